"""The ``kfp`` section: how the compiled pipeline runs on a Kubeflow Pipelines cluster.

It is read when the pipeline is compiled (``medopt pipeline compile --config X``): images, per-step resources,
retries, pod labels, the S3 secret, node selectors, tolerations and the pipeline root are baked into the YAML then.
In the pods it is read once more, for ``store``: steps in separate pods share artifacts only through S3, so a config
whose store is local runs against this in-cluster store instead.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from medopt.config.base import Section
from medopt.config.platform import StoreConfig

_DNS_LABEL = r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"
# Subsets of Kubernetes quantities that the KFP SDK's own checks also accept (it refuses "1.5Gi" and "2k").
_CPU = r"^([0-9]*\.)?[0-9]+m?$"
_MEMORY = r"^[0-9]+(Ki|Mi|Gi|Ti|K|M|G|T)?$"
_PIPELINE_ROOT = r"^(minio|s3|gs)://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[A-Za-z0-9._=+-]+)*/?$"
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")

STEP_NAMES: tuple[str, ...] = ("data", "train", "compress", "federate", "deploy", "evaluate", "bench")
"""The steps of ``medopt.pipeline.step_list.STEPS`` (a test keeps the two equal; config does not import pipeline)."""

_MEMORY_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
                 "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def cpu_cores(quantity: str) -> float:
    """A CPU quantity ("500m", "2") in cores, to compare a request with its limit."""
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def memory_bytes(quantity: str) -> int:
    """A memory quantity ("512Mi", "4G") in bytes, to compare a request with its limit."""
    number = re.match(r"^[0-9]+", quantity)
    assert number is not None  # the field pattern guarantees it
    return int(number.group()) * _MEMORY_UNITS[quantity[number.end():]]


def _check_labels(labels: dict[str, str], what: str) -> dict[str, str]:
    for key, value in labels.items():
        if not _LABEL_KEY.match(key):
            raise ValueError(f"{what} key {key!r} is not a Kubernetes label key")
        if not _LABEL_VALUE.match(value):
            raise ValueError(f"{what} value {value!r} (key {key!r}) is not a Kubernetes label value")
    return labels


class Toleration(Section):
    """One pod toleration, as in a PodSpec (e.g. for a tainted GPU node pool)."""

    key: str | None = None
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> "Toleration":
        if self.operator == "Exists" and self.value is not None:
            raise ValueError("a toleration with operator Exists takes no value")
        if self.key is None and self.operator != "Exists":
            raise ValueError("a toleration without a key needs operator Exists")
        return self


class StepResources(Section):
    """What one step's pod asks for; a GPU only when ``accelerator_count`` > 0 (the step then runs the CUDA image)."""

    cpu_request: str = Field("500m", pattern=_CPU)
    cpu_limit: str = Field("2", pattern=_CPU)
    memory_request: str = Field("1Gi", pattern=_MEMORY)
    memory_limit: str = Field("2Gi", pattern=_MEMORY)
    accelerator_type: str = Field("nvidia.com/gpu", min_length=1, description="Extended resource name of the GPU.")
    accelerator_count: int = Field(0, ge=0, le=16)
    retries: int = Field(1, ge=0, le=10, description="Re-runs of a failed pod (preemption, a flaky S3 read).")
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: tuple[Toleration, ...] = ()

    @field_validator("cpu_request", "cpu_limit", "memory_request", "memory_limit", mode="before")
    @classmethod
    def _number_as_quantity(cls, value: Any) -> Any:
        """``cpu_limit: 4`` in YAML is an int; Kubernetes and KFP take the quantity as a string."""
        return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value

    @field_validator("node_selector")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_labels(value, "node_selector")

    @model_validator(mode="after")
    def _request_within_limit(self) -> "StepResources":
        if cpu_cores(self.cpu_request) > cpu_cores(self.cpu_limit):
            raise ValueError(f"cpu_request {self.cpu_request} exceeds cpu_limit {self.cpu_limit}")
        if memory_bytes(self.memory_request) > memory_bytes(self.memory_limit):
            raise ValueError(f"memory_request {self.memory_request} exceeds memory_limit {self.memory_limit}")
        return self


# Training (and federated training, Ray in the pod) needs the most; deploy only renders YAML.
_STEP_DEFAULTS: dict[str, dict[str, Any]] = {
    "data": {"cpu_request": "500m", "cpu_limit": "2", "memory_request": "1Gi", "memory_limit": "4Gi", "retries": 2},
    "train": {"cpu_request": "2", "cpu_limit": "4", "memory_request": "4Gi", "memory_limit": "8Gi"},
    "compress": {"cpu_request": "1", "cpu_limit": "2", "memory_request": "2Gi", "memory_limit": "4Gi"},
    "federate": {"cpu_request": "2", "cpu_limit": "4", "memory_request": "4Gi", "memory_limit": "8Gi"},
    "deploy": {"cpu_request": "100m", "cpu_limit": "500m", "memory_request": "256Mi", "memory_limit": "512Mi",
               "retries": 2},
    "evaluate": {"cpu_request": "1", "cpu_limit": "2", "memory_request": "2Gi", "memory_limit": "4Gi"},
    "bench": {"cpu_request": "2", "cpu_limit": "2", "memory_request": "2Gi", "memory_limit": "4Gi", "retries": 0},
}


class PipelineResources(Section):
    """Per-step resources. A step's keys given in YAML are merged over that step's defaults, not over the generic
    ``StepResources`` ones, so ``train: {accelerator_count: 1}`` keeps train's larger CPU and memory."""

    data: StepResources = StepResources(**_STEP_DEFAULTS["data"])
    train: StepResources = StepResources(**_STEP_DEFAULTS["train"])
    compress: StepResources = StepResources(**_STEP_DEFAULTS["compress"])
    federate: StepResources = StepResources(**_STEP_DEFAULTS["federate"])
    deploy: StepResources = StepResources(**_STEP_DEFAULTS["deploy"])
    evaluate: StepResources = StepResources(**_STEP_DEFAULTS["evaluate"])
    bench: StepResources = StepResources(**_STEP_DEFAULTS["bench"])

    @model_validator(mode="before")
    @classmethod
    def _merge_over_step_defaults(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw
        return {step: {**_STEP_DEFAULTS[step], **given} if step in _STEP_DEFAULTS and isinstance(given, dict)
                else given for step, given in raw.items()}

    def for_step(self, step: str) -> StepResources:
        """The resources of the step called ``step``."""
        if step not in STEP_NAMES:
            raise KeyError(f"no resources for unknown step {step!r}")
        return getattr(self, step)


def _in_cluster_store() -> StoreConfig:
    return StoreConfig(kind="s3", endpoint="minio.medopt.svc:9000", bucket="medopt", secure=False, create_bucket=True)


class KfpConfig(Section):
    """The cluster side of the KFP pipeline (compile time), and the store its pods share (run time)."""

    image: str = Field("ghcr.io/medopt/medopt:0.1.0", min_length=1)
    gpu_image: str = Field("ghcr.io/medopt/medopt-cuda:0.1.0", min_length=1,
                           description="Image of the steps whose accelerator_count is above 0.")
    namespace: str = Field("medopt", pattern=_DNS_LABEL,
                           description="Where the pipeline pods run; the secret and the service account live there.")
    service_account: str = Field("medopt-pipeline", pattern=_DNS_LABEL,
                                 description="A run-level setting in KFP v2: passed by `medopt pipeline submit`.")
    s3_secret: str = Field("medopt-s3", pattern=_DNS_LABEL,
                           description="Secret whose AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY become the pods' env.")
    pod_labels: dict[str, str] = Field(
        default_factory=lambda: {"medopt.io/role": "pipeline", "medopt.io/s3-access": "true"},
        description="Labels the NetworkPolicies admit (API access, MinIO access).")
    pipeline_root: str = Field("minio://medopt/kfp", pattern=_PIPELINE_ROOT,
                               description="Where KFP keeps its artifacts; the kfp-launcher ConfigMap holds its "
                                           "endpoint and credentials.")
    caching: bool = Field(True, description="KFP caching of the data, train, compress and federate steps.")
    store: StoreConfig = Field(default_factory=_in_cluster_store,
                               description="The S3 store that the pods use when the config's store is local.")
    resources: PipelineResources = PipelineResources()

    @field_validator("pod_labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_labels(value, "pod_labels")

    @field_validator("store")
    @classmethod
    def _shared_store(cls, value: StoreConfig) -> StoreConfig:
        if value.kind != "s3":
            raise ValueError("kfp.store must be an S3 store: pods do not share a local folder")
        return value
