"""deploy.apply 'apply': server-side apply of the KServe objects and the wait for Ready.

These drive ``medopt.serve.apply`` through the real ``kubernetes`` client against a loopback stand-in API server
with canned InferenceService statuses (tests/kube_api_server.py): they test our requests (apply content type, field
manager, no force), polling, timeout and error lines through the client, not KServe itself.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kube_api_server import KubeAPI, Reply, kube_api, status_reply  # noqa: F401 - kube_api is a fixture
from medopt.config import DeployConfig, ExperimentConfig, ServeConfig, StoreConfig
from medopt.kube import KubeError
from medopt.pipeline.refs import StoreRef
from medopt.pipeline.steps import deploy_step
from medopt.serve.apply import APPLY_CONTENT_TYPE, DeployApplyError, apply_and_wait
from medopt.serve.deploy import render_inference_service, render_serving_runtime
from medopt.store import LocalStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "k8s"))
from rbac import missing_permissions  # noqa: E402

NS = "medopt"
ISVC = f"/apis/serving.kserve.io/v1beta1/namespaces/{NS}/inferenceservices/lung"
RUNTIME = f"/apis/serving.kserve.io/v1alpha1/namespaces/{NS}/servingruntimes/medopt-runtime"
URL = "http://lung.medopt.example.com"


def _docs() -> list[dict[str, Any]]:
    deploy = DeployConfig()
    return [render_serving_runtime(deploy, ServeConfig(http_port=8080, grpc_port=8081)),
            render_inference_service(deploy, name="lung", uri="s3://medopt/runs/r1/train/")]


def _isvc(*conditions: dict[str, str], generation: int = 1, observed: int | None = 1, url: str | None = None) -> Reply:
    status: dict[str, Any] = {"conditions": list(conditions)}
    if observed is not None:
        status["observedGeneration"] = observed
    if url:
        status["url"] = url
    return Reply(200, {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
                       "metadata": {"name": "lung", "namespace": NS, "generation": generation}, "status": status})


def _cond(status: str, reason: str = "", message: str = "") -> dict[str, str]:
    return {"type": "Ready", "status": status, "reason": reason, "message": message}


def _serve(api: KubeAPI, statuses: list[Reply]) -> None:
    api.on("PATCH", RUNTIME, lambda req: Reply(200, req.body))
    api.on("PATCH", ISVC, lambda req: Reply(200, req.body))
    api.on("GET", ISVC, statuses)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _apply(api: KubeAPI, timeout_s: float = 60) -> Any:
    clock = FakeClock()
    return apply_and_wait(api.api_client(), _docs(), timeout_s=timeout_s, poll_s=5, clock=clock, sleep=clock.sleep)


def test_apply_is_server_side_and_waits_until_ready(kube_api: KubeAPI) -> None:
    _serve(kube_api, [_isvc(), _isvc(_cond("False", "RevisionMissing", "creating")),
                      _isvc(_cond("True"), url=URL)])
    applied = _apply(kube_api)
    assert (applied.namespace, applied.name, applied.url) == (NS, "lung", URL)
    patches = kube_api.calls("PATCH")
    assert [p.path for p in patches] == [RUNTIME, ISVC]  # the runtime first: the InferenceService selects it
    for patch, doc in zip(patches, _docs(), strict=True):
        assert patch.headers["content-type"] == APPLY_CONTENT_TYPE
        assert patch.query["fieldManager"] == ["medopt"] and patch.query["force"] == ["False"]
        assert patch.body == json.loads(json.dumps(doc))
    assert len(kube_api.calls("GET", ISVC)) == 3
    assert all("apply-patch" not in r.headers.get("content-type", "") for r in kube_api.calls("GET"))
    assert missing_permissions(kube_api.requests) == set()  # k8s/base/rbac.yaml grants exactly these calls


def test_a_stale_ready_of_the_previous_generation_is_not_ready(kube_api: KubeAPI) -> None:
    _serve(kube_api, [_isvc(_cond("True"), generation=2, observed=1, url="http://old"),
                      _isvc(_cond("True"), generation=2, observed=2, url=URL)])
    assert _apply(kube_api).url == URL


def test_not_ready_after_the_timeout_names_reason_and_message(kube_api: KubeAPI) -> None:
    _serve(kube_api, [_isvc(_cond("False", "RevisionFailed", "Revision lung-predictor-00001 failed with\n"
                                                             "message: Back-off pulling image"))])
    with pytest.raises(DeployApplyError, match=r"InferenceService medopt/lung not Ready after 12 s "
                                               r"\(deploy.ready_timeout_s\): RevisionFailed: Revision "
                                               r"lung-predictor-00001 failed with message: Back-off pulling image$"):
        _apply(kube_api, timeout_s=12)


def test_forbidden_apply_names_the_rbac_verb(kube_api: KubeAPI) -> None:
    kube_api.on("PATCH", RUNTIME, status_reply(403, 'servingruntimes.serving.kserve.io "medopt-runtime" is '
                                                    'forbidden: User "system:serviceaccount:medopt:medopt-pipeline" '
                                                    'cannot patch resource "servingruntimes"', "Forbidden"))
    with pytest.raises(KubeError, match="forbidden to patch servingruntimes.serving.kserve.io medopt/medopt-runtime:"
                                        " the ServiceAccount needs RBAC verb 'patch' on "
                                        "servingruntimes.serving.kserve.io in namespace medopt") as err:
        _apply(kube_api)
    assert "\n" not in str(err.value)
    assert [p.path for p in kube_api.calls("PATCH")] == [RUNTIME]  # nothing else was tried


def test_forbidden_read_names_get(kube_api: KubeAPI) -> None:
    kube_api.on("PATCH", RUNTIME, lambda req: Reply(200, req.body))
    kube_api.on("PATCH", ISVC, lambda req: Reply(200, req.body))
    kube_api.on("GET", ISVC, status_reply(403, "cannot get resource", "Forbidden"))
    with pytest.raises(KubeError, match="needs RBAC verb 'get' on inferenceservices.serving.kserve.io"):
        _apply(kube_api)


def test_a_field_owned_by_another_manager_is_a_conflict_not_overwritten(kube_api: KubeAPI) -> None:
    kube_api.on("PATCH", RUNTIME, status_reply(409, 'Apply failed with 1 conflict: conflict with "kubectl": '
                                                    '.spec.containers', "Conflict"))
    with pytest.raises(DeployApplyError, match='conflicts with another field manager .*conflict with "kubectl"'):
        _apply(kube_api)


# ---------------------------------------------------------------------------------------- the deploy step's hook
@dataclass
class FakeArtifact:
    path: str
    metadata: dict[str, Any] = field(default_factory=dict)


def _step(tmp_path: Path, apply: str) -> FakeArtifact:
    cfg = ExperimentConfig(store=StoreConfig(kind="local", root=str(tmp_path / "store")),
                           serve=ServeConfig(model_name="lung"),
                           deploy=DeployConfig(apply=apply, ready_timeout_s=5, poll_s=0.01))
    store = LocalStore(tmp_path / "store")
    model = FakeArtifact(str(tmp_path / "in" / "model"))
    StoreRef.from_manifest(store.uri, store.put_bytes("runs/r1/train/model.pt", b"w", kind="model/pytorch")).write(
        model.path)
    compressed = FakeArtifact(str(tmp_path / "in" / "compressed"))
    Path(compressed.path).write_text(json.dumps({"enabled": False}))
    out = FakeArtifact(str(tmp_path / "out" / "isvc.yaml"))
    deploy_step(cfg, "r1", model, compressed, out)
    return out


def _kubeconfig(tmp_path: Path, server: str) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "loopback", "cluster": {"server": server}}],
        "users": [{"name": "tester", "user": {"token": "test-token"}}],
        "contexts": [{"name": "test", "context": {"cluster": "loopback", "user": "tester", "namespace": NS}}]}))
    return path


def test_deploy_step_applies_from_the_kubeconfig_and_records_the_url(kube_api: KubeAPI, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    _serve(kube_api, [_isvc(_cond("Unknown", "Creating")), _isvc(_cond("True"), url=URL)])
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(_kubeconfig(tmp_path, kube_api.url)))
    out = _step(tmp_path, "apply")
    assert out.metadata["url"] == URL and out.metadata["applied"] is True
    assert kube_api.calls("PATCH")[0].headers["authorization"] == "Bearer test-token"


def test_deploy_step_default_writes_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))  # any API call would fail on this
    out = _step(tmp_path, "write")
    assert "url" not in out.metadata and Path(out.path).read_text().startswith("apiVersion: serving.kserve.io")
