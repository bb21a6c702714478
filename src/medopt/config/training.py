"""Config sections of the learning stages: model, train, evaluate, compress, federate."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from medopt.config.base import Section
from medopt.config.data_config import SplitConfig
from medopt.config.platform import _DNS_LABEL, _QUANTITY


class ModelConfig(Section):
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


OptimizerName = Literal["sgd", "adam", "adamw", "adagrad", "adadelta", "adaptive"]


class SchedulerConfig(Section):
    kind: Literal["none", "cosine_warm_restarts"] = "cosine_warm_restarts"
    t0: int = Field(10, ge=1, description="Epochs in the first cosine cycle.")
    t_mult: int = Field(1, ge=1)
    eta_min: float = Field(0.0, ge=0)


class TolerationConfig(Section):
    """One pod toleration (core/v1 Toleration) for the Ray worker pods of ``train.backend: kuberay``."""

    key: str | None = Field(None, min_length=1)
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None


class KubeRayConfig(Section):
    """The RayJob of ``train.backend: kuberay``: where its Ray cluster runs, what it gets, how long the step waits."""

    namespace: str = Field("medopt", pattern=_DNS_LABEL)
    image: str = Field("ghcr.io/medopt/medopt:0.1.0", min_length=1, description="Ray pods' image without GPUs.")
    cuda_image: str = Field("ghcr.io/medopt/medopt-cuda:0.1.0", min_length=1,
                            description="Ray pods' image when train.num_gpus > 0.")
    service_account: str = Field("medopt-pipeline", pattern=_DNS_LABEL)
    s3_secret: str = Field("medopt-s3", pattern=_DNS_LABEL, description="Secret with AWS_* keys, as envFrom.")
    head_cpu_request: str = Field("1", pattern=_QUANTITY)
    head_cpu_limit: str = Field("2", pattern=_QUANTITY)
    head_memory_request: str = Field("2Gi", pattern=_QUANTITY)
    head_memory_limit: str = Field("4Gi", pattern=_QUANTITY)
    worker_cpu_request: str = Field("2", pattern=_QUANTITY)
    worker_cpu_limit: str = Field("2", pattern=_QUANTITY)
    worker_memory_request: str = Field("4Gi", pattern=_QUANTITY)
    worker_memory_limit: str = Field("4Gi", pattern=_QUANTITY)
    workers: int | None = Field(None, ge=1, le=1000, description="Ray worker pods; default train.num_workers.")
    node_selector: dict[str, str] = Field(default_factory=dict, description="nodeSelector of the Ray worker pods.")
    tolerations: tuple[TolerationConfig, ...] = Field((), description="Extra tolerations of the Ray worker pods.")
    timeout_s: float = Field(6 * 3600, gt=0, description="The step fails (and stops the job) after this long.")
    poll_s: float = Field(5.0, gt=0, le=300, description="Seconds between status reads of the RayJob.")
    keep_job_on_failure: bool = Field(
        False, description="Leave a failed RayJob (status, submitter log) for debugging; KubeRay still removes its "
                           "Ray cluster a minute after the end.")


class TrainConfig(Section):
    backend: Literal["local", "ray", "kuberay"] = Field(
        "local", description="'ray' trains in this process's Ray (or ray_address); 'kuberay' submits a RayJob that "
                             "runs the 'ray' backend on a Ray cluster of its own (needs store.kind 's3').")
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
    num_gpus: int = Field(0, ge=0, le=16, description="nvidia.com/gpu per Ray worker pod (backend 'kuberay').")
    kuberay: KubeRayConfig = KubeRayConfig()

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None and not all(0 <= b < 1 for b in v):
            raise ValueError("betas must each be in [0, 1)")
        return v

    @model_validator(mode="after")
    def _enough_gpus(self) -> "TrainConfig":
        pods = self.kuberay.workers or self.num_workers
        if self.backend == "kuberay" and self.num_gpus and pods * self.num_gpus < self.num_workers:
            raise ValueError(f"train.num_workers={self.num_workers} needs a GPU each but {pods} worker pod(s) x "
                             f"train.num_gpus={self.num_gpus} give {pods * self.num_gpus}")
        if self.backend == "kuberay" and self.num_gpus and self.device == "cpu":
            raise ValueError("train.num_gpus > 0 asks for GPU pods but train.device is 'cpu'")
        return self


class EvaluateConfig(Section):
    bootstrap_samples: int = Field(1000, ge=0, description="Bootstrap resamples for 95% CIs (0 disables).")
    ci_level: float = Field(0.95, gt=0.5, lt=1)
    latency_runs: int = Field(30, ge=1)
    latency_warmup: int = Field(5, ge=0)
    latency_batch_sizes: tuple[int, ...] = (1, 32)
    report: bool = True


class CompressConfig(Section):
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
    bn_recalibration_samples: int = Field(
        512, ge=0, description="Training images whose BatchNorm statistics are re-estimated after each pruning step "
                               "(0: keep the unpruned network's statistics).")
    finetune_epochs: int = Field(2, ge=0)
    finetune_lr: float = Field(1e-4, gt=0)
    distill: bool = Field(False, description="Distil from the unpruned teacher while fine-tuning.")
    distill_alpha: float = Field(0.5, ge=0, le=1)
    distill_temperature: float = Field(4.0, gt=0)
    student: str = Field("efficientnet_lite0", description="Registry model the distill recipes train (no "
                         "squeeze-excite, ReLU6: int8-friendly); it keeps the teacher's stem, geometry and classes.")
    student_epochs: int = Field(10, ge=1, description="Distillation epochs of the student (best on validation kept).")
    student_lr: float = Field(1e-3, gt=0, description="Constant learning rate of the student's distillation.")
    student_pretrained: Literal["auto", "yes", "no"] = Field(
        "auto", description="Start the student from ImageNet weights: 'auto' when the registry has an offline source.")
    calibration_samples: int = Field(256, ge=1)
    calibration_methods: tuple[Literal["minmax", "percentile", "entropy"], ...] = Field(
        ("minmax",), min_length=1,
        description="ORT int8 calibration, tried in order until one stays within the accuracy budget.")
    int8_output_correction: bool = Field(
        True, description="When an int8 file misses the accuracy budget, try it again with its mean logit shift "
                          "on the calibration images cancelled (label-free output bias correction).")
    onnx_opset: int = Field(17, ge=13, le=23)
    num_threads: int | None = Field(None, ge=1, description="Threads for latency measurements; default all cores.")
    pt2e_compile: bool = Field(True, description="Also time PT2E int8 under torch.compile (slow first call).")


FederateStrategy = Literal["fedavg", "fedavg_equal", "fedprox", "fedadam", "fedyogi", "fedavgm"]


class DPConfig(Section):
    """Client-side clipping of each update plus server-side Gaussian noise on their mean (DP-FedAvg)."""

    enabled: bool = False
    clip_norm: float = Field(1.0, gt=0, description="L2 bound C on each client's update (new - global weights).")
    noise_multiplier: float = Field(1.0, gt=0, description="z: noise std on the sum of updates is z * C.")
    delta: float = Field(1e-5, gt=0, lt=1, description="delta of the reported (epsilon, delta) budget.")


class FederateConfig(Section):
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
    client_cpus: float | None = Field(None, gt=0, description="Ray CPUs per simulated client; default: all clients "
                                      "train at once when there are at most 2 per CPU, else 1 CPU each.")
    client_gpus: float | None = Field(None, ge=0, le=1, description="GPU share per client; default 1/clients on CUDA.")
    ray_num_cpus: int | None = Field(None, ge=1, description="CPUs of the local Ray head; default: all cores.")
    ray_address: str | None = Field(
        None, pattern=r"^(auto|ray://\S+|\S+:\d+)$",
        description="Ray cluster to simulate on ('auto' on a Ray node, ray://head:10001); default: a local head. "
                    "Then client_cpus defaults to 1 and client_gpus to 0: set them for the cluster.")

    @model_validator(mode="after")
    def _consistent(self) -> "FederateConfig":
        if self.min_fit_results > self.min_available_clients:
            raise ValueError("federate.min_fit_results cannot exceed federate.min_available_clients")
        if self.secagg and self.min_available_clients < 3:
            raise ValueError("federate.secagg needs min_available_clients >= 3 (SecAgg+ shares keys among >= 3)")
        return self
