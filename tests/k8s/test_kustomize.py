"""k8s/: both overlays render offline with kubectl kustomize and every object passes strict schema validation."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from kubeschema import ManifestInvalid, validate_manifest
from render import OVERLAYS, kustomize

PROJECT_IMAGE = "ghcr.io/medopt/medopt:0.1.0"


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return kustomize(request.param)


def _by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def _one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in _by_kind(docs, kind) if d["metadata"]["name"] == name]
    return doc


def test_every_object_validates_strictly(rendered: list[dict[str, Any]]) -> None:
    kinds = {d["kind"] for d in rendered}
    assert {"Namespace", "ServiceAccount", "Role", "RoleBinding", "Deployment", "Service",
            "PersistentVolumeClaim", "NetworkPolicy", "RayJob", "ConfigMap"} <= kinds
    for doc in rendered:
        validate_manifest(doc)
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "medopt", doc["metadata"]["name"]


def test_no_secret_is_rendered(rendered: list[dict[str, Any]]) -> None:
    assert not _by_kind(rendered, "Secret")
    minio = _one(rendered, "Deployment", "minio")["spec"]["template"]["spec"]["containers"][0]
    refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in minio["env"]}
    assert refs == {"medopt-s3"} and all("value" not in e for e in minio["env"])


def test_rbac_is_least_privilege(rendered: list[dict[str, Any]]) -> None:
    for role in _by_kind(rendered, "Role"):
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"]
            assert not {"update", "deletecollection", "escalate", "bind"} & set(rule["verbs"])
    serving = _one(rendered, "ServiceAccount", "medopt-serving")
    assert serving["automountServiceAccountToken"] is False
    bound = {s["name"] for b in _by_kind(rendered, "RoleBinding") for s in b["subjects"]}
    assert bound == {"medopt-pipeline"}


def test_network_policies_default_deny(rendered: list[dict[str, Any]]) -> None:
    deny = _one(rendered, "NetworkPolicy", "default-deny-all")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    minio = _one(rendered, "NetworkPolicy", "minio-ingress")["spec"]["ingress"][0]
    assert minio["ports"] == [{"protocol": "TCP", "port": 9000}]
    assert minio["from"][0] == {"podSelector": {"matchLabels": {"medopt.io/s3-access": "true"}}}


def test_rayjob_trains_with_the_ray_backend(rendered: list[dict[str, Any]]) -> None:
    job = _one(rendered, "RayJob", "medopt-train")["spec"]
    assert job["entrypoint"].startswith("medopt train ") and "--set train.backend=ray" in job["entrypoint"]
    cluster = job["rayClusterSpec"]
    pods = [cluster["headGroupSpec"]["template"]] + [g["template"] for g in cluster["workerGroupSpecs"]]
    for pod in pods:
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        for c in pod["spec"]["containers"]:
            assert c["image"] in (PROJECT_IMAGE, PROJECT_IMAGE.replace("/medopt:", "/medopt-cuda:"))
            assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_overlays_differ_where_intended() -> None:
    sizes = {o: _one(kustomize(o), "PersistentVolumeClaim", "minio-data")["spec"]["resources"] for o in OVERLAYS}
    assert sizes == {"local-kind": {"requests": {"storage": "2Gi"}}, "cloud": {"requests": {"storage": "100Gi"}},
                     "cloud-gpu": {"requests": {"storage": "100Gi"}}}
    gpu = _one(kustomize("cloud-gpu"), "RayJob", "medopt-train")["spec"]
    (group,) = gpu["rayClusterSpec"]["workerGroupSpecs"]
    assert group["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert group["template"]["spec"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert "--set train.device=cuda" in gpu["entrypoint"]


def test_wrong_fields_fail(rendered: list[dict[str, Any]]) -> None:
    job = copy.deepcopy(_one(rendered, "RayJob", "medopt-train"))
    job["spec"]["entryPoint"] = job["spec"].pop("entrypoint")
    with pytest.raises(ManifestInvalid, match="entryPoint"):
        validate_manifest(job)
    minio = copy.deepcopy(_one(rendered, "Deployment", "minio"))
    minio["spec"]["template"]["spec"]["containers"][0]["imagePullpolicy"] = "Always"
    with pytest.raises(ManifestInvalid, match="imagePullpolicy"):
        validate_manifest(minio)


def test_an_overlay_can_move_every_project_image_to_another_registry(tmp_path: Path) -> None:
    """``images:`` reaches the RayJob's head, workers and submitter too (k8s/base/kustomizeconfig.yaml)."""
    import os
    import subprocess

    from render import REPO, load_docs, tool

    base = os.path.relpath(REPO / "k8s" / "overlays" / "cloud", tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        f"resources: [{base}]\nimages:\n  - name: ghcr.io/medopt/medopt\n"
        "    newName: registry.example.com/team/medopt\n    newTag: '1.2.3'\n")
    out = subprocess.run([tool("kubectl"), "kustomize", str(tmp_path)], capture_output=True, text=True, timeout=60,
                         check=True).stdout
    (job,) = [d for d in load_docs(out) if d["kind"] == "RayJob"]
    spec = job["spec"]
    pods = [spec["submitterPodTemplate"], spec["rayClusterSpec"]["headGroupSpec"]["template"],
            *[g["template"] for g in spec["rayClusterSpec"]["workerGroupSpecs"]]]
    assert {c["image"] for p in pods for c in p["spec"]["containers"]} == {"registry.example.com/team/medopt:1.2.3"}


def test_kfp_namespace_objects_validate_strictly() -> None:
    docs = kustomize("kfp")
    assert {d["kind"] for d in docs} == {"ServiceAccount", "ConfigMap"}
    for doc in docs:
        validate_manifest(doc)
        assert doc["metadata"]["namespace"] == "kubeflow"


def test_cluster_storage_container_is_a_valid_container() -> None:
    """No ClusterStorageContainer CRD is in ../shared/crds: its container is checked as a core Container (in a Pod),
    its other fields against the keys KServe's CRD defines (spec: container, supportedUriFormats, workloadType)."""
    from render import serving_examples

    (csc,) = [d for d in serving_examples() if d["kind"] == "ClusterStorageContainer"]
    assert csc["apiVersion"] == "serving.kserve.io/v1alpha1" and "namespace" not in csc["metadata"]
    assert set(csc["spec"]) <= {"container", "supportedUriFormats", "workloadType"}
    assert csc["spec"]["workloadType"] == "initContainer"
    assert all(set(f) <= {"prefix", "regex"} for f in csc["spec"]["supportedUriFormats"])
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "check"},
           "spec": {"containers": [csc["spec"]["container"]]}}
    validate_manifest(pod)
    broken = copy.deepcopy(pod)
    broken["spec"]["containers"][0]["securityContext"]["runAsNonroot"] = True
    with pytest.raises(ManifestInvalid, match="runAsNonroot"):
        validate_manifest(broken)
