"""The one typed experiment config that drives every stage.

Each stage receives only its own section. Every model is frozen and forbids unknown keys, so a typo in a YAML file
fails loudly with the field's dotted path instead of being silently ignored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ConfigError(ValueError):
    """A config file or override is invalid; the message is one readable line naming the field."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


# --------------------------------------------------------------------------------------------------------- data
class SyntheticConfig(_Section):
    """Deterministic lesion-like images for tests and the quick start."""

    num_samples: int = Field(600, ge=10, description="Total images generated (before splitting).")
    image_size: int = Field(28, ge=8, le=1024)
    num_classes: int = Field(2, ge=2, le=20)
    channels: Literal[1, 3] = 1
    noise: float = Field(0.15, ge=0.0, le=1.0, description="Std of additive Gaussian noise in [0,1] units.")


class SplitConfig(_Section):
    """Stratified split used when a source has no predefined train/val/test split."""

    train: float = Field(0.8, gt=0, lt=1)
    val: float = Field(0.1, ge=0, lt=1)
    test: float = Field(0.1, gt=0, lt=1)

    @model_validator(mode="after")
    def _sums_to_one(self) -> "SplitConfig":
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train+val+test must sum to 1, got {total:g}")
        return self


class PreprocessConfig(_Section):
    """Deterministic preprocessing applied at training and evaluation alike."""

    image_size: int = Field(28, ge=8, le=1024, description="Images are resized to this square size.")
    crop: Literal["none", "center", "random"] = "none"
    crop_size: int | None = Field(None, ge=8, description="Crop size after resize; defaults to image_size.")
    normalize: Literal["unit", "meanstd"] = "unit"
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.5,)
    to_rgb: bool = Field(False, description="Repeat a grayscale channel to 3 channels (ImageNet backbones).")

    @field_validator("std")
    @classmethod
    def _positive_std(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if any(s <= 0 for s in v):
            raise ValueError("every std must be > 0")
        return v


class AugmentConfig(_Section):
    """Random augmentation, applied to training batches only (never at evaluation)."""

    enabled: bool = False
    rotation_deg: float = Field(10.0, ge=0, le=180)
    hflip: bool = True
    vflip: bool = False
    scale_min: float = Field(0.9, gt=0, le=1)
    scale_max: float = Field(1.1, ge=1, le=2)


class PartitionConfig(_Section):
    """How to split the training set across simulated hospitals for federated runs."""

    kind: Literal["iid", "dirichlet", "quantity", "site"] = "iid"
    num_clients: int = Field(3, ge=1, le=1000)
    alpha: float = Field(0.5, gt=0, description="Dirichlet concentration; small = strong label or quantity skew.")
    min_per_client: int = Field(2, ge=1)


class DicomConfig(_Section):
    """Intensity handling for DICOM sources; the window defaults to the file's own tags."""

    window_center: float | None = None
    window_width: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _both_or_neither(self) -> "DicomConfig":
        if (self.window_center is None) != (self.window_width is None):
            raise ValueError("set both data.dicom.window_center and window_width, or neither")
        return self


class DataConfig(_Section):
    source: Literal["synthetic", "medmnist", "folder", "dicom", "nifti", "csv"] = "synthetic"
    path: str | None = Field(None, description="npz file, image folder, or CSV of labels, by source.")
    image_root: str | None = Field(None, description="Folder the CSV's image paths are relative to.")
    image_column: str = "image"
    label_column: str = "label"
    group_column: str | None = Field(None, description="Patient/group id column; splits keep groups together.")
    site_column: str | None = Field(None, description="Hospital/site column, used by partition kind 'site'.")
    class_names: tuple[str, ...] | None = None
    max_samples: int | None = Field(None, ge=10, description="Subsample each split (stratified) for quick runs.")
    seed: int = 0
    synthetic: SyntheticConfig = SyntheticConfig()
    split: SplitConfig = SplitConfig()
    preprocess: PreprocessConfig = PreprocessConfig()
    augment: AugmentConfig = AugmentConfig()
    partition: PartitionConfig = PartitionConfig()
    dicom: DicomConfig = DicomConfig()

    @model_validator(mode="after")
    def _path_needed(self) -> "DataConfig":
        if self.source != "synthetic" and not self.path:
            raise ValueError(f"data.path is required for source '{self.source}'")
        return self


# -------------------------------------------------------------------------------------------------------- model
class ModelConfig(_Section):
    name: str = Field("resnet18", description="A name from the model registry (`medopt models`).")
    pretrained: bool = Field(False, description="Load ImageNet weights from a local file or installed package.")
    weights_path: str | None = Field(None, description="Local weights file; overrides the registry's source.")
    in_chans: int | None = Field(None, ge=1, le=4, description="Defaults to the data's channel count.")
    num_classes: int | None = Field(None, ge=1, description="Defaults to the data's class count.")
    transfer: Literal["finetune", "feature_extract", "last_n"] = "finetune"
    last_n_blocks: int = Field(1, ge=1, description="Trainable backbone blocks when transfer is 'last_n'.")
    drop_rate: float = Field(0.0, ge=0, lt=1)
    stem: Literal["imagenet", "small"] = Field(
        "imagenet",
        description="'small' swaps a ResNet's 7x7/2 stem + maxpool for a 3x3/1 conv, as MedMNIST does at 28x28.",
    )


# -------------------------------------------------------------------------------------------------------- train
OptimizerName = Literal["sgd", "adam", "adamw", "adagrad", "adadelta", "adaptive"]


class SchedulerConfig(_Section):
    kind: Literal["none", "cosine_warm_restarts"] = "cosine_warm_restarts"
    t0: int = Field(10, ge=1, description="Epochs in the first cosine cycle.")
    t_mult: int = Field(1, ge=1)
    eta_min: float = Field(0.0, ge=0)


class TrainConfig(_Section):
    backend: Literal["local", "ray"] = "local"
    epochs: int = Field(10, ge=1, le=10_000)
    batch_size: int = Field(64, ge=1)
    optimizer: OptimizerName = "adam"
    lr: float | None = Field(None, gt=0, description="Defaults to the optimizer's house default.")
    weight_decay: float | None = Field(None, ge=0)
    betas: tuple[float, float] | None = None
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum.")
    adaptive_alpha: float = Field(0.01, gt=0, description="Adaptive rule: beta step per sign of the gradient.")
    adaptive_gamma: float = Field(1.0, ge=0, description="Adaptive rule: eta_t = eta_0 * exp(-gamma * beta_t).")
    scheduler: SchedulerConfig = SchedulerConfig()
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    grad_clip: float | None = Field(None, gt=0, description="Clip the global gradient norm to this value (None: off).")
    class_weighting: bool = Field(False, description="Weight the loss by inverse class frequency.")
    early_stopping_patience: int | None = Field(None, ge=1, description="Stop after N epochs without val gain.")
    monitor: Literal["val_auc", "val_loss", "val_acc", "val_bacc"] = "val_auc"
    seed: int = 0
    num_threads: int | None = Field(None, ge=1, description="torch intra-op threads; default: all cores.")
    loader_workers: int = Field(0, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_workers: int = Field(1, ge=1, description="Ray Train workers (backend 'ray').")
    max_failures: int = Field(0, ge=0, description="Ray Train: worker failures tolerated before giving up.")
    checkpoints_to_keep: int = Field(2, ge=1, description="Ray Train: newest checkpoints kept; older are deleted.")
    cpus_per_worker: float | None = Field(None, gt=0, description="Ray Train: CPUs per worker; default: an even share.")
    ray_address: str | None = Field(None, description="Ray cluster to join (e.g. ray://head:10001); default: local.")
    ray_num_cpus: int | None = Field(None, ge=1, description="CPUs of the local Ray head; default: all cores.")

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None and not all(0 <= b < 1 for b in v):
            raise ValueError("betas must each be in [0, 1)")
        return v


# ----------------------------------------------------------------------------------------------------- evaluate
class EvaluateConfig(_Section):
    bootstrap_samples: int = Field(1000, ge=0, description="Bootstrap resamples for 95% CIs (0 disables).")
    ci_level: float = Field(0.95, gt=0.5, lt=1)
    latency_runs: int = Field(30, ge=1)
    latency_warmup: int = Field(5, ge=0)
    latency_batch_sizes: tuple[int, ...] = (1, 32)
    report: bool = True


# ----------------------------------------------------------------------------------------------------- compress
class CompressConfig(_Section):
    """Compression recipes tried after training; the accuracy budget is enforced, not hoped for."""

    enabled: bool = Field(False, description="Run the compress stage in the pipeline.")
    recipes: tuple[str, ...] = Field(("int8-static",), description="Named recipes (`medopt compress recipes`).")
    accuracy_budget: float = Field(0.01, ge=0, le=1, description="Max balanced-accuracy loss vs the fp32 model.")
    prune_importance: Literal["magnitude", "taylor"] = "magnitude"
    prune_scope: Literal["global", "uniform"] = "uniform"
    prune_norm: Literal[1, 2] = Field(2, description="Magnitude importance norm: 1 (L1) or 2 (L2).")
    prune_steps: int = Field(3, ge=1, description="Iterative prune + fine-tune rounds.")
    backoff_step: float = Field(0.1, gt=0, lt=1, description="Pruning ratio decrement when the budget is exceeded.")
    min_ratio: float = Field(0.1, gt=0, lt=1, description="Smallest pruning ratio tried before giving up.")
    round_to: int = Field(8, ge=1, description="Keep channel counts multiples of this (fast kernels).")
    finetune_epochs: int = Field(2, ge=0)
    finetune_lr: float = Field(1e-4, gt=0)
    distill: bool = Field(False, description="Distil from the unpruned teacher while fine-tuning.")
    distill_alpha: float = Field(0.5, ge=0, le=1)
    distill_temperature: float = Field(4.0, gt=0)
    calibration_samples: int = Field(256, ge=1)
    onnx_opset: int = Field(17, ge=13, le=23)
    num_threads: int | None = Field(None, ge=1, description="Threads for latency measurements; default all cores.")
    pt2e_compile: bool = Field(True, description="Also time PT2E int8 under torch.compile (slow first call).")


# ----------------------------------------------------------------------------------------------------- federate
FederateStrategy = Literal["fedavg", "fedavg_equal", "fedprox", "fedadam", "fedyogi", "fedavgm"]


class DPConfig(_Section):
    """Client-side clipping of each update plus server-side Gaussian noise on their mean (DP-FedAvg)."""

    enabled: bool = False
    clip_norm: float = Field(1.0, gt=0, description="L2 bound C on each client's update (new - global weights).")
    noise_multiplier: float = Field(1.0, gt=0, description="z: noise std on the sum of updates is z * C.")
    delta: float = Field(1e-5, gt=0, lt=1, description="delta of the reported (epsilon, delta) budget.")


class FederateConfig(_Section):
    """Federated training across the clients of data.partition, simulated on Flower's Ray engine."""

    enabled: bool = Field(False, description="Run the federate stage in the pipeline.")
    strategy: FederateStrategy = Field(
        "fedavg", description="fedavg weighs clients by examples, fedavg_equal equally; fedprox adds proximal_mu; "
        "fedadam/fedyogi/fedavgm are server-side optimizers over the mean update.")
    rounds: int = Field(5, ge=1, le=10_000)
    local_epochs: int = Field(1, ge=1, le=1000, description="Epochs each client trains per round.")
    fraction_fit: float = Field(1.0, gt=0, le=1, description="Share of clients sampled for training each round.")
    fraction_evaluate: float = Field(1.0, ge=0, le=1, description="Share of clients evaluating the global model.")
    min_available_clients: int = Field(2, ge=1, description="Clients that must be connected before round 1.")
    min_fit_results: int = Field(1, ge=1, description="Successful updates needed to change the global model.")
    proximal_mu: float = Field(0.01, ge=0, description="FedProx: weight of (mu/2)||w - w_global||^2.")
    server_lr: float | None = Field(None, gt=0, description="Server step; default fedavgm 1.0, fedadam/fedyogi 0.01.")
    server_momentum: float = Field(0.9, ge=0, lt=1, description="FedAvgM momentum; beta1 of FedAdam/FedYogi.")
    server_beta2: float = Field(0.99, ge=0, lt=1, description="FedAdam/FedYogi second-moment decay.")
    server_tau: float = Field(1e-3, gt=0, description="FedAdam/FedYogi adaptivity (epsilon in the denominator).")
    round_timeout_s: float | None = Field(None, gt=0, description="Replies later than this are dropped (None: wait).")
    dp: DPConfig = DPConfig()
    secagg: bool = Field(False, description="Flower's SecAgg+ workflow: the server sees only the masked sum.")
    client_split: SplitConfig = Field(SplitConfig(train=0.6, val=0.2, test=0.2),
                                      description="Each client's own train/val/test split.")
    client_cpus: float = Field(1.0, gt=0, description="Ray CPUs per simulated client.")
    client_gpus: float | None = Field(None, ge=0, le=1, description="GPU share per client; default 1/clients on CUDA.")
    ray_num_cpus: int | None = Field(None, ge=1, description="CPUs of the local Ray head; default: all cores.")

    @model_validator(mode="after")
    def _consistent(self) -> "FederateConfig":
        if self.min_fit_results > self.min_available_clients:
            raise ValueError("federate.min_fit_results cannot exceed federate.min_available_clients")
        if self.secagg and self.min_available_clients < 3:
            raise ValueError("federate.secagg needs min_available_clients >= 3 (SecAgg+ shares keys among >= 3)")
        return self


# -------------------------------------------------------------------------------------------------------- store
class StoreConfig(_Section):
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


# -------------------------------------------------------------------------------------------------------- serve
class ServeConfig(_Section):
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
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="Larger request bodies get 413.")
    max_images: int = Field(64, ge=1, description="Most rows (images/tensors) accepted in one request.")
    runtime: Literal["auto", "onnx", "torch"] = Field("auto", description="'auto' follows the artifact's kind.")

    @model_validator(mode="after")
    def _ports_differ(self) -> "ServeConfig":
        if self.http_port == self.grpc_port:
            raise ValueError(f"serve.http_port and serve.grpc_port must differ (both {self.http_port})")
        return self


# ------------------------------------------------------------------------------------------------------- deploy
_DNS_LABEL = r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"
_QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$"


class DeployConfig(_Section):
    """Cluster-side serving knobs of the KServe manifests; ports come from ``serve``."""

    name: str | None = Field(None, pattern=_DNS_LABEL,
                             description="InferenceService name; default: a DNS label from serve.model_name.")
    namespace: str = Field("medopt", pattern=_DNS_LABEL)
    image: str = Field("ghcr.io/medopt/medopt-serve:0.1.0", min_length=1)
    runtime: str = Field("medopt-runtime", pattern=_DNS_LABEL)
    service_account: str = Field("medopt-serving", pattern=_DNS_LABEL)
    deployment_mode: Literal["RawDeployment", "Serverless"] = "RawDeployment"
    cpu_request: str = Field("1", pattern=_QUANTITY)
    cpu_limit: str = Field("2", pattern=_QUANTITY)
    memory_request: str = Field("1Gi", pattern=_QUANTITY)
    memory_limit: str = Field("2Gi", pattern=_QUANTITY)
    gpus: int = Field(0, ge=0, le=16, description="nvidia.com/gpu per replica (0: CPU only).")
    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(3, ge=1)
    scale_metric: Literal["cpu", "memory", "concurrency", "rps"] = "cpu"
    scale_target: int = Field(70, ge=1, description="Percent for cpu/memory; requests per replica otherwise.")
    canary_traffic_percent: int | None = Field(None, ge=0, le=100)
    artifacts_pvc: str = Field("medopt-artifacts", pattern=_DNS_LABEL, description="PVC of a local store.")
    credentials_secret: str = Field(
        "medopt-s3", pattern=_DNS_LABEL,
        description="Secret with AWS_* keys that the serving ServiceAccount hands to KServe's storage initializer.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> "DeployConfig":
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"deploy.min_replicas ({self.min_replicas}) > deploy.max_replicas ({self.max_replicas})")
        raw = self.deployment_mode == "RawDeployment"
        if raw and self.scale_metric not in ("cpu", "memory"):
            raise ValueError(f"deploy.scale_metric '{self.scale_metric}' needs deployment_mode Serverless "
                             "(HPA: cpu/memory)")
        if raw and self.canary_traffic_percent is not None:
            raise ValueError("deploy.canary_traffic_percent needs deployment_mode Serverless (Knative revisions)")
        return self


# ------------------------------------------------------------------------------------------------------ the run
class ExperimentConfig(_Section):
    name: str = Field("experiment", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    seed: int = 0
    output_dir: str = Field("runs", description="Run folders (logs, reports) are created under it.")
    runner: Literal["kfp-local", "inprocess"] = Field(
        "kfp-local", description="'kfp-local' runs the KFP pipeline with kfp.local; 'inprocess' calls stages directly."
    )
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    compress: CompressConfig = CompressConfig()
    federate: FederateConfig = FederateConfig()
    store: StoreConfig = StoreConfig()
    serve: ServeConfig = ServeConfig()
    deploy: DeployConfig = DeployConfig()


# ------------------------------------------------------------------------------------------------------ loading
def _format_validation_error(err: ValidationError, prefix: str = "") -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"] if p != "__root__")
    where = f"{prefix}{loc}" if loc else prefix.rstrip(".") or "config"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    more = f" (+{len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    value = first.get("input")
    shown = f" (got {value!r})" if first["type"] != "extra_forbidden" and not isinstance(value, dict) else ""
    return f"config error at {where}: {msg}{shown}{more}"


def _parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like section.key=value")
    key, raw = text.split("=", 1)
    path = [p for p in key.strip().split(".") if p]
    if not path:
        raise ConfigError(f"override '{text}' has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override '{text}': value is not valid YAML ({exc.__class__.__name__})") from None
    return path, value


def apply_overrides(raw: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Return a copy of ``raw`` with ``a.b=c`` overrides applied (values parsed as YAML scalars/lists)."""
    out = json.loads(json.dumps(raw))
    for text in overrides:
        path, value = _parse_override(text)
        node = out
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override '{text}': '{part}' is not a section")
            node = child
        node[path[-1]] = value
    return out


def config_from_dict(raw: dict[str, Any]) -> ExperimentConfig:
    """Validate a plain dict, turning pydantic's report into one readable line."""
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err)) from None


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> ExperimentConfig:
    """Load a YAML experiment file (or the defaults when ``path`` is None) and apply ``--set`` overrides."""
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            loaded = yaml.safe_load(p.read_text())
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"config file {p}{where} is not valid YAML") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {p} must hold a mapping at the top level")
        raw = loaded
    return config_from_dict(apply_overrides(raw, overrides))


def config_from_json(text: str) -> ExperimentConfig:
    """Re-validate a config that crossed a process boundary (KFP component, Ray worker)."""
    try:
        return ExperimentConfig.model_validate_json(text)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err)) from None


def dump_yaml(cfg: BaseModel) -> str:
    """The resolved config as YAML, saved next to every artifact it produced."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


def json_schema() -> dict[str, Any]:
    """JSON schema of ExperimentConfig, for editors and docs."""
    return ExperimentConfig.model_json_schema()
