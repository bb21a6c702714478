"""The RayJob (ray.io/v1) of ``train.backend: kuberay``, built as data from the experiment config.

Why a pure builder: the same dict is created by the train step, validated against the KubeRay CRD by the tests and
checked for Pod Security "restricted" there, with no cluster. The job's driver runs ``python -m
medopt.train.kuberay_entry``, i.e. the train stage with ``train.backend: ray`` joining the job's own cluster, on
the dataset key the step was given, writing the same store keys the step would. The config travels as JSON in an
env var of the head container (the driver runs on the head and inherits it), so the RayJob is the only object to
create and delete. The store must be S3: it is how the model gets back to the step.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from importlib import metadata
from typing import Any

from medopt.config import ExperimentConfig
from medopt.config.training import KubeRayConfig
from medopt.errors import MedoptError

API_VERSION = "ray.io/v1"
GROUP, VERSION, PLURAL = "ray.io", "v1", "rayjobs"
CONFIG_ENV = "MEDOPT_CONFIG_JSON"
"""Env var of the head container holding the experiment config (JSON) for the driver."""
SUBMITTER_CONTAINER = "ray-job-submitter"
RUN_AS = 10001
S3_ACCESS_LABEL = "medopt.io/s3-access"
GPU_RESOURCE = "nvidia.com/gpu"
PREFIX_ANNOTATION = "medopt.io/run-prefix"
EPOCH_MARKER = "MEDOPT_EPOCH "
"""Prefix of the driver's per-epoch lines in the job log (``kuberay_entry`` prints, ``kuberay`` parses)."""
TTL_AFTER_FINISH_S = 60
"""The finished cluster lingers this long, so the step still reads the submitter's last log lines."""


class KubeRayJobError(MedoptError, ValueError):
    """The config cannot become a RayJob (e.g. a local store, which the Ray pods could not share)."""


def job_name(prefix: str) -> str:
    """A short DNS name unique per run prefix: KubeRay derives longer names (cluster, services) from it."""
    return f"medopt-train-{hashlib.sha256(prefix.encode()).hexdigest()[:10]}"


def check_store(cfg: ExperimentConfig) -> None:
    """Refuse a local store: the job writes the model into the store and the step reads it back from there."""
    if cfg.store.kind != "s3":
        raise KubeRayJobError(f"train.backend 'kuberay' needs store.kind 's3' (got '{cfg.store.kind}'): the Ray pods "
                              "write the trained model to the store and this step reads it back")


def driver_config(cfg: ExperimentConfig) -> ExperimentConfig:
    """The config the driver runs: the 'ray' backend joining the cluster it runs on."""
    return cfg.model_copy(update={"train": cfg.train.model_copy(update={"backend": "ray", "ray_address": "auto"})})


def image(cfg: ExperimentConfig) -> str:
    """The CUDA image when the workers get GPUs, else the CPU image."""
    k = cfg.train.kuberay
    return k.cuda_image if cfg.train.num_gpus else k.image


def _labels(component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "medopt", "app.kubernetes.io/component": component,
            "app.kubernetes.io/part-of": "medopt"}


def _pod_security() -> dict[str, Any]:
    return {"runAsNonRoot": True, "runAsUser": RUN_AS, "runAsGroup": RUN_AS, "fsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"}}


def _container_security() -> dict[str, Any]:
    return {"runAsNonRoot": True, "runAsUser": RUN_AS, "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def _resources(cpu_req: str, cpu_lim: str, mem_req: str, mem_lim: str, gpus: int = 0) -> dict[str, Any]:
    requests: dict[str, str] = {"cpu": cpu_req, "memory": mem_req}
    limits: dict[str, str] = {"cpu": cpu_lim, "memory": mem_lim}
    if gpus:
        requests[GPU_RESOURCE] = limits[GPU_RESOURCE] = str(gpus)
    return {"requests": requests, "limits": limits}


def _ray_volumes() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Ray's object store lives in /dev/shm (the runtime's 64 MiB default is too small); logs under /tmp/ray."""
    volumes = [{"name": "dshm", "emptyDir": {"medium": "Memory"}}, {"name": "ray-logs", "emptyDir": {}}]
    mounts = [{"name": "dshm", "mountPath": "/dev/shm"}, {"name": "ray-logs", "mountPath": "/tmp/ray"}]
    return volumes, mounts


def _ray_pod(k: KubeRayConfig, component: str, container: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    volumes, mounts = _ray_volumes()
    container = {**container, "envFrom": [{"secretRef": {"name": k.s3_secret}}],
                 "securityContext": _container_security(), "volumeMounts": mounts}
    return {"metadata": {"labels": {S3_ACCESS_LABEL: "true", **_labels(component)}},
            "spec": {"serviceAccountName": k.service_account, "automountServiceAccountToken": False,
                     "securityContext": _pod_security(), "containers": [container], "volumes": volumes, **extra}}


def _head(cfg: ExperimentConfig, config_json: str) -> dict[str, Any]:
    k = cfg.train.kuberay
    container = {
        "name": "ray-head", "image": image(cfg), "env": [{"name": CONFIG_ENV, "value": config_json}],
        "ports": [{"name": "gcs", "containerPort": 6379}, {"name": "dashboard", "containerPort": 8265},
                  {"name": "client", "containerPort": 10001}],
        "resources": _resources(k.head_cpu_request, k.head_cpu_limit, k.head_memory_request, k.head_memory_limit),
    }
    # num-cpus 0: no training task lands on the head, so Ray Train's CPU share per worker counts worker pods only.
    return {"rayStartParams": {"num-cpus": "0", "dashboard-host": "0.0.0.0"},
            "template": _ray_pod(k, "ray-head", container, {})}


def _tolerations(cfg: ExperimentConfig) -> list[dict[str, Any]]:
    out = [t.model_dump(exclude_none=True) for t in cfg.train.kuberay.tolerations]
    if cfg.train.num_gpus:
        out.append({"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"})
    return out


def _workers(cfg: ExperimentConfig) -> dict[str, Any]:
    k, gpus = cfg.train.kuberay, cfg.train.num_gpus
    replicas = k.workers or cfg.train.num_workers
    container = {"name": "ray-worker", "image": image(cfg),
                 "resources": _resources(k.worker_cpu_request, k.worker_cpu_limit, k.worker_memory_request,
                                         k.worker_memory_limit, gpus)}
    extra: dict[str, Any] = {}
    if k.node_selector:
        extra["nodeSelector"] = dict(k.node_selector)
    if tolerations := _tolerations(cfg):
        extra["tolerations"] = tolerations
    return {"groupName": "gpu" if gpus else "cpu", "replicas": replicas, "minReplicas": replicas,
            "maxReplicas": replicas, "rayStartParams": {},
            "template": _ray_pod(k, "ray-worker", container, extra)}


def _submitter(cfg: ExperimentConfig) -> dict[str, Any]:
    """KubeRay's default submitter has no securityContext; with no command given KubeRay fills `ray job submit`."""
    container = {"name": SUBMITTER_CONTAINER, "image": image(cfg),
                 "resources": _resources("100m", "500m", "256Mi", "512Mi"), "securityContext": _container_security()}
    # The role label is what the ray-cluster NetworkPolicy admits to the head's job API (8265); no S3 access needed.
    return {"metadata": {"labels": {"medopt.io/role": "ray-submitter", **_labels("ray-submitter")}},
            "spec": {"restartPolicy": "Never", "automountServiceAccountToken": False,
                     "securityContext": _pod_security(), "containers": [container]}}


def entrypoint(dataset_key: str, prefix: str) -> str:
    """The driver's shell command: the train stage on ``dataset_key``, storing under ``prefix``."""
    return (f"python -m medopt.train.kuberay_entry --dataset-key {shlex.quote(dataset_key)} "
            f"--prefix {shlex.quote(prefix)}")


def build_rayjob(cfg: ExperimentConfig, *, dataset_key: str, prefix: str) -> dict[str, Any]:
    """The RayJob training ``dataset_key`` into ``<prefix>/train/`` on a Ray cluster of its own.

    Raises:
        KubeRayJobError: the store is not S3.
    """
    check_store(cfg)
    k = cfg.train.kuberay
    config_json = json.dumps(driver_config(cfg).model_dump(mode="json"), separators=(",", ":"))
    spec: dict[str, Any] = {
        "entrypoint": entrypoint(dataset_key, prefix),
        "shutdownAfterJobFinishes": True,
        "ttlSecondsAfterFinished": TTL_AFTER_FINISH_S,
        "activeDeadlineSeconds": max(1, int(k.timeout_s)),
        "backoffLimit": 0,
        "submitterPodTemplate": _submitter(cfg),
        "rayClusterSpec": {"rayVersion": metadata.version("ray"), "headGroupSpec": _head(cfg, config_json),
                           "workerGroupSpecs": [_workers(cfg)]},
    }
    return {"apiVersion": API_VERSION, "kind": "RayJob",
            "metadata": {"name": job_name(prefix), "namespace": k.namespace, "labels": _labels("train"),
                         "annotations": {PREFIX_ANNOTATION: prefix}},
            "spec": spec}
