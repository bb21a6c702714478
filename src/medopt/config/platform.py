"""Config sections of the platform: the artifact store, the model server and its cluster deployment."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from medopt.config.base import Section


class StoreConfig(Section):
    """Where artifacts live. Credentials never come from this file: env vars or a mounted secret file."""

    kind: Literal["local", "s3"] = "local"
    root: str = Field("artifacts", description="Local folder (kind 'local').")
    endpoint: str | None = Field(None, description="S3 endpoint host:port, e.g. minio.medopt:9000 (kind 's3').")
    bucket: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    prefix: str = Field("", description="Key prefix inside the bucket.")
    secure: bool = Field(True, description="TLS on/off.")
    region: str | None = None
    create_bucket: bool = Field(False, description="Create the bucket when it does not exist.")
    credentials_file: str | None = Field(
        None, description="Mounted secret file with access_key/secret_key lines; else AWS_ACCESS_KEY_ID/..."
    )

    @model_validator(mode="after")
    def _s3_needs_endpoint(self) -> "StoreConfig":
        if self.kind == "s3" and (not self.endpoint or not self.bucket):
            raise ValueError("store.endpoint and store.bucket are required for kind 's3'")
        return self


class ServeConfig(Section):
    """The KServe model server: which artifact, where it listens, how requests are batched and threaded."""

    model_name: str = Field("medopt", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$",
                            description="Name in /v1/models/<name>:predict and /v2/models/<name>/infer.")
    artifact: str | None = Field(None, description="Store key of the model to serve (ONNX or medopt model file).")
    host: str = Field("127.0.0.1", description="Bind address; 0.0.0.0 only inside a pod.")
    http_port: int = Field(8080, ge=1, le=65535)
    grpc_port: int = Field(8081, ge=1, le=65535)
    enable_grpc: bool = True
    max_batch_size: int = Field(16, ge=1, le=1024, description="Rows merged into one inference (1: no batching).")
    max_latency_ms: float = Field(2.0, ge=0, le=1000, description="Longest wait for more rows once batching is busy.")
    threads: int | None = Field(None, ge=1, description="ORT intra-op / torch threads per inference; default all.")
    workers: int = Field(1, ge=1, le=64, description="Batches run concurrently (threads x workers = CPU budget).")
    inline_inference: bool = Field(False, description="Run each batch on the event-loop thread (workers must be 1): no "
                                   "thread hand-off per batch, but no request is read while a batch runs.")
    timing: bool = Field(False, description="Per-stage server timings (medopt-timing header, GET /debug/timing); "
                         "for profiling, off in production.")
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="Larger request bodies get 413.")
    max_images: int = Field(64, ge=1, description="Most rows (images/tensors) accepted in one request.")
    runtime: Literal["auto", "onnx", "torch"] = Field("auto", description="'auto' follows the artifact's kind.")
    device: Literal["cpu", "cuda"] = Field("cpu", description="'cuda' refuses to start without a usable GPU "
                                                            "(no silent CPU fallback).")

    @model_validator(mode="after")
    def _ports_differ(self) -> "ServeConfig":
        if self.http_port == self.grpc_port:
            raise ValueError(f"serve.http_port and serve.grpc_port must differ (both {self.http_port})")
        if self.inline_inference and self.workers != 1:
            raise ValueError(f"serve.inline_inference runs one batch at a time; serve.workers must be 1, not "
                             f"{self.workers}")
        return self


RAW_MODES = ("RawDeployment", "Standard")  # no Knative: HTTP and gRPC ports, HPA scaling
_DNS_LABEL = r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"
_QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$"


class DeployConfig(Section):
    """Cluster-side serving knobs of the KServe manifests; ports come from ``serve``."""

    name: str | None = Field(None, pattern=_DNS_LABEL,
                             description="InferenceService name; default: a DNS label from serve.model_name.")
    namespace: str = Field("medopt", pattern=_DNS_LABEL)
    image: str = Field("ghcr.io/medopt/medopt-serve:0.1.0", min_length=1)
    runtime: str = Field("medopt-runtime", pattern=_DNS_LABEL)
    service_account: str = Field("medopt-serving", pattern=_DNS_LABEL)
    deployment_mode: Literal["RawDeployment", "Serverless", "Standard", "Knative"] = Field(
        "RawDeployment", description="KServe >= 0.17 also names them Standard (= RawDeployment) and Knative "
        "(= Serverless); the manifests carry the name given here.")
    cpu_request: str = Field("1", pattern=_QUANTITY)
    cpu_limit: str = Field("2", pattern=_QUANTITY)
    memory_request: str = Field("1Gi", pattern=_QUANTITY)
    memory_limit: str = Field("2Gi", pattern=_QUANTITY)
    gpus: int = Field(0, ge=0, le=16, description="nvidia.com/gpu per replica (0: CPU only).")
    gpu_image: str = Field("ghcr.io/medopt/medopt-cuda:0.1.0", min_length=1,
                           description="Predictor image when gpus > 0 (CUDA runtime, onnxruntime-gpu).")
    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(3, ge=1)
    scale_metric: Literal["cpu", "memory", "concurrency", "rps"] = "cpu"
    scale_target: int = Field(70, ge=1, description="Percent for cpu/memory; requests per replica otherwise.")
    container_concurrency: int = Field(0, ge=0, description="Most requests in flight per replica (0: no limit); "
                                       "`medopt bench plan` suggests one.")
    canary_traffic_percent: int | None = Field(None, ge=0, le=100)
    transformer: bool = Field(False, description="Decode images/DICOM in a separate KServe transformer (its own "
                              "pods, python -m medopt.serve.transformer) instead of inside the predictor.")
    artifacts_pvc: str = Field("medopt-artifacts", pattern=_DNS_LABEL, description="PVC of a local store.")
    credentials_secret: str = Field(
        "medopt-s3", pattern=_DNS_LABEL,
        description="Secret with AWS_* keys that the serving ServiceAccount hands to KServe's storage initializer.",
    )
    apply: Literal["write", "apply"] = Field(
        "write", description="'write' stores the YAML only; 'apply' also server-side-applies the ServingRuntime and "
                             "InferenceService and waits until the InferenceService is Ready.")
    ready_timeout_s: float = Field(600.0, gt=0, description="'apply': seconds to wait for Ready before failing.")
    poll_s: float = Field(5.0, gt=0, le=300, description="'apply': seconds between status reads.")

    @model_validator(mode="after")
    def _consistent(self) -> "DeployConfig":
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"deploy.min_replicas ({self.min_replicas}) > deploy.max_replicas ({self.max_replicas})")
        raw = self.deployment_mode in RAW_MODES
        if raw and self.scale_metric not in ("cpu", "memory"):
            raise ValueError(f"deploy.scale_metric '{self.scale_metric}' needs deployment_mode Serverless "
                             "(HPA: cpu/memory)")
        if raw and self.canary_traffic_percent is not None:
            raise ValueError("deploy.canary_traffic_percent needs deployment_mode Serverless (Knative revisions)")
        return self
