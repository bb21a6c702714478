"""References resolve and every object has one owner.

Every ConfigMap, Secret, ServiceAccount, PVC, Role, ServingRuntime and image that a rendered object names exists in
the rendered set (kustomize overlay + helm chart, as installed together) or is a documented prerequisite
(k8s/prerequisites.yaml); Services select a pod that exists. Installing kustomize then helm (and helm alone) renders
no object twice.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterator

import pytest
import yaml
from render import OVERLAYS, REPO, helm, key, kustomize, serving_examples

PREREQS = yaml.safe_load((REPO / "k8s" / "prerequisites.yaml").read_text())


def _pod_specs(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    from psa import pod_templates

    for _, pod in pod_templates(doc, storage={"name": "storage-initializer"}):
        yield pod


def references(doc: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(kind, namespace, name) of every object ``doc`` refers to, and ("Image", "", ref) for images."""
    ns = doc["metadata"].get("namespace", "")
    for pod in _pod_specs(doc):
        if pod.get("serviceAccountName"):
            yield "ServiceAccount", ns, pod["serviceAccountName"]
        for v in pod.get("volumes", []):
            if "configMap" in v:
                yield "ConfigMap", ns, v["configMap"]["name"]
            if "secret" in v:
                yield "Secret", ns, v["secret"]["secretName"]
            if "persistentVolumeClaim" in v:
                yield "PersistentVolumeClaim", ns, v["persistentVolumeClaim"]["claimName"]
        for c in [*pod.get("initContainers", []), *pod.get("containers", [])]:
            if c.get("image"):
                yield "Image", "", c["image"]
            for e in c.get("env", []):
                ref = e.get("valueFrom", {})
                if "secretKeyRef" in ref:
                    yield "Secret", ns, ref["secretKeyRef"]["name"]
                if "configMapKeyRef" in ref:
                    yield "ConfigMap", ns, ref["configMapKeyRef"]["name"]
            for e in c.get("envFrom", []):
                if "secretRef" in e:
                    yield "Secret", ns, e["secretRef"]["name"]
                if "configMapRef" in e:
                    yield "ConfigMap", ns, e["configMapRef"]["name"]
    if doc["kind"] == "ServiceAccount":
        for s in doc.get("secrets", []):
            yield "Secret", ns, s["name"]
    if doc["kind"] == "RoleBinding":
        yield doc["roleRef"]["kind"], ns, doc["roleRef"]["name"]
        for s in doc["subjects"]:
            yield s["kind"], s.get("namespace", ns), s["name"]
    if doc["kind"] == "InferenceService" and "model" in doc["spec"]["predictor"]:
        yield "ServingRuntime", ns, doc["spec"]["predictor"]["model"]["runtime"]
    if doc["kind"] == "ServingRuntime":
        for c in doc["spec"]["containers"]:
            yield "Image", "", c["image"]
    if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "kfp-launcher":
        for provider in yaml.safe_load(doc["data"]["providers"]).values():
            for entry in provider.values():
                yield "Secret", ns, entry["credentials"]["secretRef"]["secretName"]


def _installed(overlay: str, helm_case: str = "default") -> list[dict[str, Any]]:
    """What the documented install applies: the overlay, k8s/kfp (KFP's namespace), the chart."""
    return kustomize(overlay) + kustomize("kfp") + helm(helm_case)


def _unresolved(docs: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    present = {(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]) for d in docs}
    present |= {(o["kind"], o["namespace"], o["name"]) for o in PREREQS["objects"]}
    images = set(PREREQS["images"]["built"]) | set(PREREQS["images"]["external"])
    missing = set()
    for d in docs:
        for ref in references(d):
            if ref[0] == "Image":
                if ref[2] not in images:
                    missing.add(ref)
            elif ref not in present:
                missing.add(ref)
    return missing


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_reference_resolves(overlay: str) -> None:
    docs = _installed(overlay)
    assert sum(1 for d in docs for _ in references(d)) >= 15
    assert _unresolved(docs) == set()


def test_serving_examples_resolve_against_the_install() -> None:
    docs = kustomize("local-kind") + kustomize("kfp") + serving_examples()
    assert _unresolved(docs) == set()
    runtimes = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ServingRuntime"}
    for isvc in (d for d in docs if d["kind"] == "InferenceService"):
        mode = isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"]
        ports = runtimes[isvc["spec"]["predictor"]["model"]["runtime"]]["spec"]["containers"][0]["ports"]
        if mode in ("Serverless", "Knative"):  # Knative accepts one container port
            assert len(ports) == 1, isvc["metadata"]["name"]


def test_a_missing_reference_is_found() -> None:
    docs = [d for d in kustomize("local-kind") if d["kind"] != "ConfigMap"]
    assert ("ConfigMap", "medopt", next(v["configMap"]["name"] for d in docs if d["kind"] == "RayJob"
            for v in d["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["volumes"]
            if "configMap" in v)) in _unresolved(docs)


def test_the_rayjob_mounts_the_generated_configmap() -> None:
    docs = kustomize("local-kind")
    (cm,) = [d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"]
    assert cm.startswith("medopt-experiment-") and cm != "medopt-experiment"  # the generator's hash suffix


def test_services_select_existing_pods() -> None:
    docs = kustomize("local-kind")
    labels = [d["spec"]["template"]["metadata"]["labels"] for d in docs if d["kind"] == "Deployment"]
    for svc in (d for d in docs if d["kind"] == "Service"):
        sel = svc["spec"]["selector"]
        assert any(all(lab.get(k) == v for k, v in sel.items()) for lab in labels), svc["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kustomize_then_helm_renders_no_object_twice(overlay: str) -> None:
    counts = Counter(key(d) for d in _installed(overlay))
    assert [k for k, n in counts.items() if n > 1] == []


def test_helm_alone_creates_what_it_needs() -> None:
    docs = helm("helm-only")
    kinds = Counter(d["kind"] for d in docs)
    assert kinds["ServiceAccount"] == 2 and kinds["Role"] == 1 and kinds["RoleBinding"] == 1
    assert [k for k, n in Counter(key(d) for d in docs).items() if n > 1] == []
    assert _unresolved(docs) == set()
    # ...the same objects kustomize owns (so they would collide, which is why the chart's are off by default)...
    owned = {key(d): d for d in kustomize("local-kind")}
    for d in docs:
        if d["kind"] in ("ServiceAccount", "Role", "RoleBinding"):
            assert key(d) in owned, key(d)
    # ...with the same permissions.
    (role,) = [d for d in docs if d["kind"] == "Role"]
    assert role["rules"] == owned[key(role)]["rules"]


def test_installed_controllers_match_the_sdks_and_images() -> None:
    """kind-up's KServe is the SDK's version and the storage initializer's tag; KFP's is kfp-server-api's."""
    import re

    script = (REPO / "scripts" / "kind-up.sh").read_text()
    lock = dict(line.split("==") for line in (REPO / "requirements.lock").read_text().split() if "==" in line)
    version = {v: re.search(rf'^{v}="v?([^"]+)"', script, re.M).group(1)  # type: ignore[union-attr]
               for v in ("KSERVE_VERSION", "KFP_VERSION")}
    assert version["KSERVE_VERSION"] == lock["kserve"]
    assert version["KFP_VERSION"] == lock["kfp-server-api"]
    (csc,) = [d for d in serving_examples() if d["kind"] == "ClusterStorageContainer"]
    assert csc["spec"]["container"]["image"] == f"kserve/storage-initializer:v{lock['kserve']}"
    assert csc["spec"]["container"]["image"] in PREREQS["images"]["external"]


def test_kfp_launcher_config_matches_the_pipeline() -> None:
    """The launcher's default root is the compiled pipeline's, and its MinIO is the in-cluster store."""
    from medopt.config import ExperimentConfig

    (launcher,) = [d for d in kustomize("kfp") if d["kind"] == "ConfigMap"]
    kfp = ExperimentConfig().kfp
    assert launcher["data"]["defaultPipelineRoot"] == kfp.pipeline_root
    scheme = kfp.pipeline_root.split("://")[0]
    provider = yaml.safe_load(launcher["data"]["providers"])[scheme]["default"]
    assert provider["endpoint"] == kfp.store.endpoint and provider["disableSSL"] is (not kfp.store.secure)
    assert ("Secret", "kubeflow", "medopt-s3") in set(references(launcher))
