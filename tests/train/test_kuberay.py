"""train.backend 'kuberay': the RayJob as data (CRD-valid, Pod Security "restricted"), and the step's lifecycle logic.

The lifecycle tests drive ``RayJobClient`` / ``run_rayjob`` through the real ``kubernetes`` client classes against
a loopback stand-in API server with canned RayJob status progressions (tests/kube_api_server.py): they test our
polling, log copying, failure, timeout and clean-up logic through the client's real requests, not KubeRay itself.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from kube_api_server import KubeAPI, Reply, kube_api, status_reply  # noqa: F401 - kube_api is a fixture
from medopt.config import ExperimentConfig, config_from_json, load_config
from medopt.kube import KubeConfigError, KubeError, api_client
from medopt.store import LocalStore
from medopt.train.history import save_history
from medopt.train.kuberay import KubeRayError, RayJobClient, line_sink, read_trained, run_rayjob, train_on_kuberay
from medopt.train.kuberay_job import CONFIG_ENV, EPOCH_MARKER, KubeRayJobError, build_rayjob, job_name
from medopt.train.stage import run_train
from medopt.train.state import checkpoint_state

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "k8s"))
from kubeschema import validate_manifest  # noqa: E402
from rbac import missing_permissions  # noqa: E402
from psa import pod_violations as restricted_violations  # noqa: E402

S3 = ["store.kind=s3", "store.endpoint=minio.medopt:9000", "store.bucket=medopt", "store.secure=false"]
PREFIX, DATASET = "runs/exp-20260101-000000-abcdef", "runs/exp-20260101-000000-abcdef/data/dataset.npz"
NAME = job_name(PREFIX)
JOBS = "/apis/ray.io/v1/namespaces/medopt/rayjobs"
POD = f"{NAME}-x7k2p"


def kuberay_config(*overrides: str) -> ExperimentConfig:
    return load_config(None, ["train.backend=kuberay", *S3, *overrides])


def pod_templates(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    cluster = job["spec"]["rayClusterSpec"]
    return {"head": cluster["headGroupSpec"]["template"], "worker": cluster["workerGroupSpecs"][0]["template"],
            "submitter": job["spec"]["submitterPodTemplate"]}


# ------------------------------------------------------------------------------------------------ the RayJob as data
@pytest.mark.parametrize("overrides", [(), ("train.num_gpus=1", "train.num_workers=2")])
def test_rayjob_validates_strictly_against_the_kuberay_crd(overrides: tuple[str, ...]) -> None:
    validate_manifest(build_rayjob(kuberay_config(*overrides), dataset_key=DATASET, prefix=PREFIX))


def test_every_pod_template_meets_pod_security_restricted_and_reaches_s3() -> None:
    job = build_rayjob(kuberay_config(), dataset_key=DATASET, prefix=PREFIX)
    assert job["spec"]["shutdownAfterJobFinishes"] is True
    for role, template in pod_templates(job).items():
        assert restricted_violations(template["spec"]) == [], role
        s3 = template["metadata"]["labels"].get("medopt.io/s3-access")
        assert s3 == (None if role == "submitter" else "true"), role  # the submitter only talks to the head
        assert template["spec"]["securityContext"]["runAsUser"] == 10001
    for role in ("head", "worker"):
        spec = pod_templates(job)[role]["spec"]
        shm = {v["name"]: v for v in spec["volumes"]}["dshm"]
        assert shm["emptyDir"] == {"medium": "Memory"}
        container = spec["containers"][0]
        assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]
        assert container["envFrom"] == [{"secretRef": {"name": "medopt-s3"}}]


def test_the_restricted_check_itself_rejects_what_the_profile_forbids() -> None:
    spec = pod_templates(build_rayjob(kuberay_config(), dataset_key=DATASET, prefix=PREFIX))["head"]["spec"]
    broken = json.loads(json.dumps(spec))
    broken["hostNetwork"] = True
    broken["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    broken["containers"][0]["securityContext"].pop("allowPrivilegeEscalation")
    assert len(restricted_violations(broken)) == 3


def test_gpu_workers_get_the_gpu_group_toleration_and_cuda_image() -> None:
    cfg = kuberay_config("train.num_gpus=2", "train.num_workers=4", "train.kuberay.workers=2")
    job = build_rayjob(cfg, dataset_key=DATASET, prefix=PREFIX)
    group = job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    worker = group["template"]["spec"]
    assert group["groupName"] == "gpu" and group["replicas"] == 2
    assert worker["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in worker["tolerations"]
    for template in pod_templates(job).values():
        assert template["spec"]["containers"][0]["image"] == "ghcr.io/medopt/medopt-cuda:0.1.0"
    head = pod_templates(job)["head"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in head["resources"]["limits"]
    cpu = build_rayjob(kuberay_config(), dataset_key=DATASET, prefix=PREFIX)
    cpu_worker = pod_templates(cpu)["worker"]["spec"]
    assert cpu_worker["containers"][0]["image"] == "ghcr.io/medopt/medopt:0.1.0" and "tolerations" not in cpu_worker


def test_too_few_gpus_for_the_ray_train_workers_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="needs a GPU each"):
        kuberay_config("train.num_gpus=1", "train.num_workers=3", "train.kuberay.workers=2")


def test_the_driver_runs_the_ray_backend_on_the_given_dataset_and_prefix() -> None:
    cfg = kuberay_config("train.epochs=3", "train.kuberay.node_selector={pool: train}")
    job = build_rayjob(cfg, dataset_key=DATASET, prefix=PREFIX)
    head = pod_templates(job)["head"]["spec"]["containers"][0]
    driver = config_from_json({e["name"]: e["value"] for e in head["env"]}[CONFIG_ENV])
    assert (driver.train.backend, driver.train.ray_address, driver.train.epochs) == ("ray", "auto", 3)
    assert driver.store == cfg.store and driver.model == cfg.model
    assert job["spec"]["entrypoint"] == (f"python -m medopt.train.kuberay_entry --dataset-key {DATASET} "
                                         f"--prefix {PREFIX}")
    assert pod_templates(job)["worker"]["spec"]["nodeSelector"] == {"pool": "train"}
    assert job["metadata"]["name"] == NAME and len(NAME) <= 40


def test_a_local_store_is_refused_with_the_reason(tmp_path: Path) -> None:
    cfg = load_config(None, ["train.backend=kuberay"])
    with pytest.raises(KubeRayJobError, match="needs store.kind 's3'.*reads it back"):
        build_rayjob(cfg, dataset_key=DATASET, prefix=PREFIX)
    with pytest.raises(KubeRayJobError, match="needs store.kind 's3'"):  # through the train stage's hook
        run_train(cfg, LocalStore(tmp_path), dataset_key=DATASET, prefix=PREFIX)


def test_no_kube_config_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing-kubeconfig"))
    with pytest.raises(KubeConfigError, match="no Kubernetes credentials from kubeconfig .*missing-kubeconfig") as err:
        train_on_kuberay(kuberay_config(), LocalStore(tmp_path), dataset_key=DATASET, prefix=PREFIX)
    assert "\n" not in str(err.value)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")  # a pod without a mounted ServiceAccount token
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    with pytest.raises(KubeConfigError, match="from the in-cluster ServiceAccount: .*token") as err:
        api_client()
    assert "\n" not in str(err.value)


# ------------------------------------------ lifecycle: our polling logic through the real client, canned statuses
def _status(deployment: str = "", job: str = "", **extra: str) -> Reply:
    status = {k: v for k, v in {"jobDeploymentStatus": deployment, "jobStatus": job, **extra}.items() if v}
    return Reply(200, {"apiVersion": "ray.io/v1", "kind": "RayJob", "metadata": {"name": NAME}, "status": status})


def _serve_job(api: KubeAPI, statuses: list[Reply], logs: list[str] | None = None) -> None:
    api.on("POST", JOBS, lambda req: Reply(201, req.body))
    api.on("GET", f"{JOBS}/{NAME}", statuses)
    api.on("DELETE", f"{JOBS}/{NAME}", Reply(200, {"kind": "Status", "status": "Success"}))
    api.on("GET", "/api/v1/namespaces/medopt/pods",
           Reply(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": [{"metadata": {"name": POD}}]}))
    api.on("GET", f"/api/v1/namespaces/medopt/pods/{POD}/log",
           [Reply(text=t) for t in logs] if logs else status_reply(400, "container is waiting to start"))


class FakeClock:
    """Monotonic time that advances only when the watcher sleeps (no real waiting in these tests)."""

    def __init__(self) -> None:
        self.now, self.sleeps = 0.0, []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _run(api: KubeAPI, *, timeout_s: float = 600, keep: bool = False, out: Any = None,
         epochs: list[tuple[int, dict[str, Any]]] | None = None) -> tuple[dict[str, Any], FakeClock]:
    from kubernetes import client

    clock = FakeClock()
    client_api = api.api_client()
    sink = line_sink(NAME, (lambda e, row: epochs.append((e, row))) if epochs is not None else None, out)
    job = RayJobClient(client.CustomObjectsApi(client_api), client.CoreV1Api(client_api), "medopt", NAME, sink)
    body = build_rayjob(kuberay_config(), dataset_key=DATASET, prefix=PREFIX)
    status = run_rayjob(job, body, timeout_s=timeout_s, poll_s=5, keep_on_failure=keep, clock=clock,
                        sleep=clock.sleep)
    return status, clock


def test_lifecycle_success_streams_logs_and_epochs_then_deletes(kube_api: KubeAPI) -> None:
    line = lambda e: EPOCH_MARKER + json.dumps({"epoch": e, "row": {"val_auc": 0.5 + e / 10}})  # noqa: E731
    logs = ["", "Job submitted\n", f"Job submitted\n{line(0)}\n", f"Job submitted\n{line(0)}\n{line(1)}\ndone\n"]
    _serve_job(kube_api, [_status(), _status("Initializing"), _status("Running", "RUNNING"),
                          _status("Complete", "SUCCEEDED")], logs)
    out, epochs = io.StringIO(), []
    status, clock = _run(kube_api, out=out, epochs=epochs)
    assert status["jobStatus"] == "SUCCEEDED" and clock.sleeps == [5, 5, 5]
    assert epochs == [(0, {"val_auc": 0.5}), (1, {"val_auc": 0.6})]  # each epoch once, though logs are re-read
    assert out.getvalue().splitlines() == [f"[{NAME}] Job submitted", f"[{NAME}] {line(0)}", f"[{NAME}] {line(1)}",
                                           f"[{NAME}] done"]
    (created,) = kube_api.calls("POST", JOBS)
    assert created.body["kind"] == "RayJob" and created.body["metadata"]["name"] == NAME
    assert created.headers["content-type"] == "application/json"
    (listed, *_) = kube_api.calls("GET", "/api/v1/namespaces/medopt/pods")
    assert listed.query["labelSelector"] == [f"job-name={NAME}"]
    (deleted,) = kube_api.calls("DELETE", f"{JOBS}/{NAME}")
    assert deleted.query["propagationPolicy"] == ["Background"]
    assert missing_permissions(kube_api.requests) == set()  # k8s/base/rbac.yaml grants exactly these calls


def test_lifecycle_failed_job_names_job_and_message_and_is_deleted(kube_api: KubeAPI) -> None:
    _serve_job(kube_api, [_status("Running", "RUNNING"),
                          _status("Failed", "FAILED", reason="AppFailed", message="Job entrypoint command failed\n"
                                                                                   "with exit code 1")])
    with pytest.raises(KubeRayError, match=rf"RayJob medopt/{NAME} failed: AppFailed: Job entrypoint command failed "
                                           "with exit code 1$"):
        _run(kube_api)
    assert len(kube_api.calls("DELETE", f"{JOBS}/{NAME}")) == 1


def test_lifecycle_complete_but_ray_job_failed_is_a_failure(kube_api: KubeAPI) -> None:
    _serve_job(kube_api, [_status("Complete", "FAILED", message="driver exited 1")])
    with pytest.raises(KubeRayError, match="failed: job FAILED: driver exited 1"):
        _run(kube_api)


def test_lifecycle_keeps_a_failed_job_when_asked(kube_api: KubeAPI) -> None:
    _serve_job(kube_api, [_status("Failed", "FAILED", reason="DeadlineExceeded", message="deadline")])
    with pytest.raises(KubeRayError, match=f"DeadlineExceeded: deadline .kept: kubectl -n medopt get rayjob {NAME}"):
        _run(kube_api, keep=True)
    assert kube_api.calls("DELETE", ".*") == []


def test_lifecycle_timeout_reports_the_last_state_and_deletes(kube_api: KubeAPI) -> None:
    _serve_job(kube_api, [_status("Initializing"), _status("Running", "PENDING", message="waiting for workers")])
    with pytest.raises(KubeRayError, match=r"did not finish within 12 s .*last state: Running / job PENDING "
                                           r"\(waiting for workers\)"):
        _run(kube_api, timeout_s=12)
    assert len(kube_api.calls("GET", f"{JOBS}/{NAME}")) == 4  # t = 0, 5, 10, 12
    assert len(kube_api.calls("DELETE", f"{JOBS}/{NAME}")) == 1


def test_lifecycle_retries_a_transient_status_error(kube_api: KubeAPI) -> None:
    _serve_job(kube_api, [status_reply(503, "etcd leader changed"), _status("Complete", "SUCCEEDED")])
    status, _ = _run(kube_api)
    assert status["jobDeploymentStatus"] == "Complete"


def test_lifecycle_forbidden_create_names_the_rbac_verb(kube_api: KubeAPI) -> None:
    kube_api.on("POST", JOBS, status_reply(403, 'rayjobs.ray.io is forbidden: User "system:serviceaccount:medopt:'
                                                'medopt-pipeline" cannot create resource "rayjobs"', "Forbidden"))
    with pytest.raises(KubeError, match="needs RBAC verb 'create' on rayjobs.ray.io in namespace medopt"):
        _run(kube_api)
    assert kube_api.calls("DELETE", ".*") == []


def test_lifecycle_existing_job_is_refused_with_the_delete_command(kube_api: KubeAPI) -> None:
    kube_api.on("POST", JOBS, status_reply(409, f'rayjobs.ray.io "{NAME}" already exists', "AlreadyExists"))
    with pytest.raises(KubeRayError, match=f"kubectl -n medopt delete rayjob {NAME}"):
        _run(kube_api)


# ----------------------------------------------------------------------------------- reading the result back
def _store_as_the_ray_backend_does(store: LocalStore, tmp_path: Path) -> None:
    model = torch.nn.Linear(2, 2)
    history = {"epoch": [0.0, 1.0], "val_auc": [0.6, 0.7]}
    torch.save(checkpoint_state(model, None, None, 1, history), tmp_path / "checkpoint.pt")
    save_history(history, tmp_path / "history.json")
    (tmp_path / "model.pt").write_bytes(b"model bytes")
    summary = {"best_epoch": 1, "best_score": 0.7, "monitor": "val_auc", "epochs_run": 2, "stopped_early": False}
    hist = store.put_file(f"{PREFIX}/train/history.json", tmp_path / "history.json", kind="history",
                          metrics=summary, parents=[DATASET])
    ckpt = store.put_file(f"{PREFIX}/train/checkpoint.pt", tmp_path / "checkpoint.pt",
                          kind="checkpoint/training-state", parents=[DATASET])
    store.put_file(f"{PREFIX}/train/model.pt", tmp_path / "model.pt", kind="model/pytorch", metrics=summary,
                   parents=[DATASET, ckpt.key], meta={"history": hist.key})


def test_read_trained_rebuilds_the_step_outputs_from_the_store(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    _store_as_the_ray_backend_does(store, tmp_path)
    trained = read_trained(kuberay_config(), store, dataset_key=DATASET, prefix=PREFIX)
    assert trained.model.key == f"{PREFIX}/train/model.pt" and trained.history.key == f"{PREFIX}/train/history.json"
    assert (trained.fit.best_epoch, trained.fit.best_score, trained.fit.epochs_run) == (1, 0.7, 2)
    assert trained.fit.history["val_auc"] == [0.6, 0.7] and trained.fit.training_state()["epoch"] == 1
    with pytest.raises(KubeRayError, match="not on runs/other/data"):
        read_trained(kuberay_config(), store, dataset_key="runs/other/data/dataset.npz", prefix=PREFIX)


def test_read_trained_without_a_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KubeRayError, match=f"the RayJob succeeded but {PREFIX}/train/ .* lacks its model"):
        read_trained(kuberay_config(), LocalStore(tmp_path), dataset_key=DATASET, prefix=PREFIX)
