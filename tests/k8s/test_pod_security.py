"""Every pod medopt's manifests lead to passes Pod Security "restricted" (the medopt namespace enforces it).

Checked: the kustomize overlays (MinIO, KubeRay head, workers and job submitter), the helm chart over its values matrix
and the serving/ examples (predictor, transformer and KServe's storage initializer as overridden by
serving/clusterstoragecontainer.yaml; ServingRuntime containers), with the evaluator in tests/k8s/psa.py.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from psa import container_templates, container_violations, pod_templates, pod_violations
from render import HELM_MATRIX, OVERLAYS, helm, kustomize, serving_examples

from medopt.train.kuberay_job import build_rayjob  # the RayJob the train step creates (train.backend: kuberay)


def _storage_container() -> dict[str, Any]:
    (csc,) = [d for d in serving_examples() if d["kind"] == "ClusterStorageContainer"]
    return csc["spec"]["container"]


def _sources() -> dict[str, list[dict[str, Any]]]:
    out = {f"kustomize {o}": kustomize(o) for o in OVERLAYS}
    out |= {f"helm {c}": helm(c) for c in HELM_MATRIX}
    out["serving/"] = serving_examples()
    return out


def all_pods() -> list[tuple[str, dict[str, Any]]]:
    storage = _storage_container()
    return [(f"{src}: {where}", pod) for src, docs in _sources().items() for d in docs
            for where, pod in pod_templates(d, storage)]


def test_every_pod_template_is_restricted() -> None:
    pods = all_pods()
    assert any("submitter" in w for w, _ in pods) and any("transformer" in w for w, _ in pods)
    assert len(pods) >= 20, len(pods)
    failures = {w: v for w, pod in pods if (v := pod_violations(pod))}
    assert not failures, failures
    for needed in ("Deployment minio", "RayJob medopt-train head", "RayJob medopt-train workers gpu",
                   "InferenceService medopt predictor", "InferenceService medopt transformer"):
        assert any(needed in w for w, _ in pods), needed


def test_storage_initializer_is_restricted_only_with_the_override() -> None:
    (isvc,) = [d for d in helm("default") if d["kind"] == "InferenceService"]
    (_, with_override), = [p for p in pod_templates(isvc, _storage_container()) if "predictor" in p[0]]
    (_, kserve_default), = [p for p in pod_templates(isvc) if "predictor" in p[0]]
    assert not pod_violations(with_override)
    assert any("storage-initializer" in v for v in pod_violations(kserve_default))


def test_runtime_and_storage_containers_are_restricted() -> None:
    containers = [c for docs in _sources().values() for d in docs for c in container_templates(d)]
    assert any(w.startswith("ClusterStorageContainer") for w, _ in containers)
    assert len(containers) >= 8
    assert {w: v for w, c in containers if (v := container_violations(c))} == {}


def test_a_rayjob_without_a_submitter_template_is_rejected() -> None:
    (job,) = [d for d in kustomize("local-kind") if d["kind"] == "RayJob"]
    job = copy.deepcopy(job)
    del job["spec"]["submitterPodTemplate"]
    (_, submitter), = [p for p in pod_templates(job) if p[0].endswith("submitter")]
    assert "ray-job-submitter: allowPrivilegeEscalation must be false" in pod_violations(submitter)


@pytest.mark.parametrize("breakage, message", [
    (lambda p: p["containers"][0]["securityContext"].update(allowPrivilegeEscalation=True), "allowPrivilegeEscalation"),
    (lambda p: p["containers"][0]["securityContext"]["capabilities"].update(add=["SYS_ADMIN"]), "adds capabilities"),
    (lambda p: p.update(hostNetwork=True), "hostNetwork"),
    (lambda p: p.setdefault("volumes", []).append({"name": "h", "hostPath": {"path": "/"}}), "hostPath"),
    (lambda p: [p["securityContext"].pop("seccompProfile"),
                p["containers"][0]["securityContext"].pop("seccompProfile", None)], "seccompProfile"),
    (lambda p: [p["securityContext"].pop("runAsNonRoot"),
                p["containers"][0]["securityContext"].pop("runAsNonRoot", None)], "runAsNonRoot"),
])
def test_the_evaluator_catches_each_rule(breakage: Any, message: str) -> None:
    (minio,) = [d for d in kustomize("local-kind") if d["kind"] == "Deployment"]
    pod = copy.deepcopy(minio["spec"]["template"]["spec"])
    assert not pod_violations(pod)
    breakage(pod)
    assert any(message in v for v in pod_violations(pod)), pod_violations(pod)


def test_kuberay_train_step_job_is_restricted() -> None:
    from medopt.config import config_from_dict

    for gpus in (0, 1):
        cfg = config_from_dict({"store": {"kind": "s3", "endpoint": "minio.medopt.svc:9000", "bucket": "medopt"},
                                "train": {"backend": "kuberay", "num_gpus": gpus}})
        job = build_rayjob(cfg, dataset_key="runs/r1/data/dataset.npz", prefix="runs/r1")
        pods = pod_templates(job)
        assert len(pods) >= 3
        assert {w: v for w, p in pods if (v := pod_violations(p))} == {}
