"""KServe manifests for a medopt artifact: the ServingRuntime and the InferenceService, built as data.

Why Python dicts instead of text templates: values land in typed fields (no YAML injection, no quoting bugs), and the
same builder serves the KFP ``deploy`` component, the checked-in examples under ``serving/`` and the tests that
validate the output against the KServe CRD schemas. The Helm chart (``helm/medopt``) renders the same shape.

Cluster knobs come from ``ExperimentConfig.deploy`` (``DeployConfig``), ports from ``ExperimentConfig.serve``. The
model is downloaded once: ``storageUri`` names the artifact's *folder* in the store, so KServe's storage initializer
brings ``<name>`` and ``<name>.manifest.json`` (the store layout) to ``/mnt/models``, and the server opens a local store
rooted there (``--set store.root=/mnt/models --artifact <name>``), which checks the sha256 against the manifest on
read. The predictor container therefore holds no store credentials; the storage initializer gets them from the
serving ServiceAccount's Secret (see k8s/README.md).

Deployment modes: ``RawDeployment`` (default; KServe >= 0.17 calls it ``Standard``) exposes HTTP and gRPC and scales
with an HPA on cpu/memory; ``Serverless`` (``Knative``) allows one port per container, so its ServingRuntime has HTTP
only, scales on concurrency/rps with the KPA and is needed for canary rollouts. GPU replicas (``deploy.gpus``) get the
``nvidia.com/gpu`` toleration and the server runs with ``serve.device=cuda`` (its image must carry CUDA).
``render_transformer`` adds an optional separate transformer (``python -m medopt.serve.transformer``) in front of the
predictor; there is no config switch for it yet, so the KFP ``deploy`` step still renders the predictor alone.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from medopt.config import DeployConfig, ServeConfig, StoreConfig
from medopt.config.platform import RAW_MODES
from medopt.errors import MedoptError

API_ISVC = "serving.kserve.io/v1beta1"
API_RUNTIME = "serving.kserve.io/v1alpha1"
MODEL_FORMAT = "medopt"
MODEL_DIR = "/mnt/models"
RUN_AS_USER = 10001
S3_ACCESS_LABEL = "medopt.io/s3-access"
KPA_UTILISATION_PERCENT = 70
MIN_PORT = 1024  # the container runs as a non-root user, which cannot bind privileged ports
_DNS_LABEL = r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"


class DeployError(MedoptError, ValueError):
    """Deploy inputs are invalid; the message names the field and what was wrong."""


def dns_name(text: str) -> str:
    """A DNS-1123 label from a free name (lowercase, '-' for other characters), as Kubernetes names require."""
    label = re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", text.lower())).strip("-")[:63].rstrip("-")
    if not label or not label[0].isalpha():
        label = f"m-{label}"[:63].rstrip("-")
    return label


def artifact_folder(key: str) -> str:
    """The store folder holding ``key`` and its manifest ("" for a key at the store's root)."""
    return key.rpartition("/")[0]


def artifact_name(key: str) -> str:
    """The artifact's file name: its key in the local store that the storage initializer fills at /mnt/models."""
    return key.rpartition("/")[2]


def storage_uri(store: StoreConfig, key: str, deploy: DeployConfig) -> str:
    """The folder the storage initializer copies to /mnt/models: the artifact and its ``.manifest.json`` with it.

    S3 folders end with "/"; a PVC is mounted at its sub-path, so no slash there (the claim holds a local store root).
    """
    folder = artifact_folder(key)
    if store.kind == "s3":
        parts = [p for p in (store.prefix.strip("/"), folder) if p]
        return f"s3://{store.bucket}/{''.join(p + '/' for p in parts)}"
    return f"pvc://{deploy.artifacts_pvc}{'/' + folder if folder else ''}"


def _security_context() -> dict[str, Any]:
    return {"runAsNonRoot": True, "runAsUser": RUN_AS_USER, "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"}}


def _resources(s: DeployConfig) -> dict[str, Any]:
    requests: dict[str, Any] = {"cpu": s.cpu_request, "memory": s.memory_request}
    limits: dict[str, Any] = {"cpu": s.cpu_limit, "memory": s.memory_limit}
    if s.gpus:
        requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = str(s.gpus)
    return {"requests": requests, "limits": limits}


def _checked_ports(serve: ServeConfig) -> tuple[int, int]:
    """serve's HTTP and gRPC ports, refused when the non-root container could not bind them."""
    for field in ("http_port", "grpc_port"):
        port = getattr(serve, field)
        if port < MIN_PORT:
            raise DeployError(f"serve.{field} {port} is privileged: the server runs as non-root, use >= {MIN_PORT}")
    return serve.http_port, serve.grpc_port


def _ports(deploy: DeployConfig, http_port: int, grpc_port: int) -> list[dict[str, Any]]:
    """Knative (Serverless) accepts one container port; raw deployments expose HTTP and gRPC."""
    ports = [{"name": "http1", "containerPort": http_port, "protocol": "TCP"}]
    if deploy.deployment_mode in RAW_MODES:
        ports.append({"name": "grpc", "containerPort": grpc_port, "protocol": "TCP"})
    return ports


def probes(http_port: int) -> dict[str, Any]:
    """Startup (a cold start loads and warms the model: up to 5 min), liveness and readiness on KServe's V2 health.

    Liveness only asks whether the process answers (``/v2/health/live``), so a slow model load never restarts it;
    readiness gates traffic on the model being loaded.
    """
    def get(path: str) -> dict[str, Any]:
        return {"httpGet": {"path": path, "port": http_port}}
    return {"startupProbe": {**get("/v2/health/live"), "periodSeconds": 2, "failureThreshold": 150},
            "livenessProbe": {**get("/v2/health/live"), "periodSeconds": 10, "failureThreshold": 3},
            "readinessProbe": {**get("/v2/health/ready"), "periodSeconds": 5}}


def _labels(component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "medopt", "app.kubernetes.io/component": component,
            "app.kubernetes.io/part-of": "medopt"}


def render_serving_runtime(deploy: DeployConfig, serve: ServeConfig) -> dict[str, Any]:
    """The namespaced ServingRuntime running ``python -m medopt.serve`` for model format "medopt" (V1 + V2).

    Raises:
        DeployError: a serve port below 1024 (the container runs as non-root).
    """
    s = deploy
    http_port, grpc_port = _checked_ports(serve)
    args = ["--model-name={{.Name}}", "--host=0.0.0.0", f"--port={http_port}", f"--grpc-port={grpc_port}"]
    container = {
        "name": "kserve-container", "image": s.image, "command": ["python", "-m", "medopt.serve"], "args": args,
        "ports": _ports(s, http_port, grpc_port), "resources": _resources(s), "securityContext": _security_context(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        **probes(http_port),
    }
    return {
        "apiVersion": API_RUNTIME, "kind": "ServingRuntime",
        "metadata": {"name": s.runtime, "namespace": s.namespace, "labels": _labels("serving-runtime")},
        "spec": {
            "annotations": {"prometheus.kserve.io/port": str(http_port), "prometheus.kserve.io/path": "/metrics"},
            "supportedModelFormats": [{"name": MODEL_FORMAT, "version": "1", "autoSelect": True}],
            "protocolVersions": ["v1", "v2", "grpc-v2"], "multiModel": False,
            "containers": [container], "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}],
        },
    }


def _autoscaling(s: DeployConfig) -> dict[str, Any]:
    out: dict[str, Any] = {"minReplicas": s.min_replicas, "maxReplicas": s.max_replicas,
                           "scaleMetric": s.scale_metric, "scaleTarget": s.scale_target}
    if s.container_concurrency:
        out["containerConcurrency"] = s.container_concurrency
    if s.canary_traffic_percent is not None:
        out["canaryTrafficPercent"] = s.canary_traffic_percent
    return out


def kpa_annotations(s: DeployConfig) -> dict[str, str]:
    """Knative's autoscaler settings for Serverless/Knative modes (KServe maps scaleMetric/scaleTarget itself).

    The class is named so that a cluster whose default is the HPA class still uses the KPA; the utilisation matches the
    planner's rule (the KPA aims at 70% of ``containerConcurrency``).
    """
    if s.deployment_mode in RAW_MODES:
        return {}
    out = {"autoscaling.knative.dev/class": "kpa.autoscaling.knative.dev"}
    if s.scale_metric in ("concurrency", "rps"):
        out["autoscaling.knative.dev/target-utilization-percentage"] = str(KPA_UTILISATION_PERCENT)
    return out


def _gpu_scheduling(s: DeployConfig) -> dict[str, Any]:
    """GPU nodes are usually tainted ``nvidia.com/gpu:NoSchedule``; a GPU replica must tolerate it."""
    if not s.gpus:
        return {}
    return {"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]}


def server_args(key: str) -> list[str]:
    """Arguments of ``python -m medopt.serve`` that serve ``key`` from the local store the storage initializer filled.

    The store there is ``/mnt/models`` holding ``<name>`` and ``<name>.manifest.json``; reading verifies the sha256,
    and no credentials are needed.
    """
    return [f"--artifact={artifact_name(key)}", "--set=store.kind=local", f"--set=store.root={MODEL_DIR}"]


def _pod_security_context() -> dict[str, Any]:
    return {"runAsNonRoot": True, "runAsUser": RUN_AS_USER, "fsGroup": RUN_AS_USER,
            "seccompProfile": {"type": "RuntimeDefault"}}


def render_transformer(deploy: DeployConfig, serve: ServeConfig, *, key: str, uri: str) -> dict[str, Any]:
    """``spec.transformer``: ``python -m medopt.serve.transformer`` (same image) decoding images/DICOM in its own pods.

    KServe's controller appends ``--model_name`` (the InferenceService name, as the runtime's ``{{.Name}}``) and
    ``--predictor_host``; the port goes in as ``--http_port`` so the controller does not append its default. The
    transformer reads only the artifact's description (manifest meta, or the parent model's recipe) from the folder
    the storage initializer copies to /mnt/models (``STORAGE_URI``), so it holds no store credentials either. It
    forwards V2 to the predictor (``protocolVersion: v2``) and never needs a GPU.

    Raises:
        DeployError: a serve port below 1024 (the container runs as non-root).
    """
    s = deploy
    http_port, _ = _checked_ports(serve)
    args = ["--host=0.0.0.0", f"--http_port={http_port}", "--protocol=v2", *server_args(key)]
    container = {
        "name": "kserve-container", "image": s.image, "command": ["python", "-m", "medopt.serve.transformer"],
        "args": args, "env": [{"name": "STORAGE_URI", "value": uri}],
        "ports": [{"name": "http1", "containerPort": http_port, "protocol": "TCP"}],
        "resources": _resources(s.model_copy(update={"gpus": 0})), "securityContext": _security_context(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        **probes(http_port),
    }
    return {"serviceAccountName": s.service_account, **_autoscaling(s),
            "labels": {S3_ACCESS_LABEL: "true", **_labels("transformer")},
            "securityContext": _pod_security_context(), "containers": [container],
            "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}]}


def render_inference_service(deploy: DeployConfig, *, name: str, uri: str, sha256: str | None = None,
                             args: list[str] | tuple[str, ...] = (),
                             transformer: dict[str, Any] | None = None) -> dict[str, Any]:
    """The InferenceService serving the artifact at ``uri`` (s3:// or pvc://) with protocol v2.

    ``uri`` is the artifact's folder (``storage_uri``); S3 credentials reach only the storage initializer, through the
    service account's Secret, so the predictor container carries no env or Secret. The pod keeps the S3-access label
    because the storage initializer runs in it. ``args`` (``server_args``) are appended to the runtime's; the ports
    are the ServingRuntime's, so ``serve`` is not needed here. ``transformer`` (``render_transformer``) adds a
    separate transformer in front of the predictor.
    """
    s = deploy
    if not re.match(_DNS_LABEL, name):
        raise DeployError(f"InferenceService name {name!r} is not a DNS-1123 label (use dns_name())")
    if not re.match(r"^(s3|pvc)://[^\s]+$", uri):
        raise DeployError(f"storageUri {uri!r} must be s3://bucket/folder/ or pvc://claim/folder")
    annotations = {"serving.kserve.io/deploymentMode": s.deployment_mode, **kpa_annotations(s)}
    if sha256:
        annotations["medopt.io/artifact-sha256"] = sha256
    model = {"modelFormat": {"name": MODEL_FORMAT}, "runtime": s.runtime, "protocolVersion": "v2",
             "storageUri": uri, "resources": _resources(s), "securityContext": _security_context()}
    if s.gpus:  # the CUDA image (onnxruntime-gpu, torch CUDA) and the CUDA provider; the runtime's image is CPU-only
        model["image"] = s.gpu_image
        args = [*args, "--set=serve.device=cuda"]
    if args:
        model["args"] = list(args)
    predictor = {"serviceAccountName": s.service_account, **_autoscaling(s),
                 "labels": {S3_ACCESS_LABEL: "true", **_labels("predictor")},
                 "securityContext": _pod_security_context(), "model": model, **_gpu_scheduling(s)}
    spec: dict[str, Any] = {"predictor": predictor}
    if transformer is not None:
        spec["transformer"] = transformer
    return {"apiVersion": API_ISVC, "kind": "InferenceService",
            "metadata": {"name": name, "namespace": s.namespace, "labels": _labels("inference-service"),
                         "annotations": annotations},
            "spec": spec}


def to_yaml(*docs: dict[str, Any]) -> str:
    """Documents as one multi-document YAML string (keys in the builders' order)."""
    return "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs)
