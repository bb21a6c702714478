"""Distributed training on Ray Train: the local trainer's epoch functions under a ``TorchTrainer``.

``train_with_ray`` is what the train stage calls when ``train.backend`` is "ray": it starts (or joins) Ray, runs
``medopt.train.ray_worker.train_worker`` on ``train.num_workers`` workers (DDP; gloo on CPU, NCCL on GPU), streams
each epoch's history row back to ``on_epoch_end`` while training runs, survives up to ``train.max_failures`` worker
failures by resuming from the latest per-epoch checkpoint, and returns the best epoch's model with a ``FitResult``
shaped exactly like local training's.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from medopt.config import ExperimentConfig
from medopt.data.types import ImageDataset
from medopt.errors import MedoptError
from medopt.models.geometry import ModelGeometry, build_model
from medopt.train.ray_runtime import ray_session
from medopt.train.ray_storage import ray_storage
from medopt.train.ray_worker import STATE_FILE, ResumeError, load_checkpoint_dir, train_worker
from medopt.train.seeding import DeviceUnavailableError
from medopt.train.tracker import EpochTracker, FitResult

logger = logging.getLogger(__name__)

EpochCallback = Callable[[int, dict[str, Any]], None]

_POLL_S = 0.2


class RayTrainingError(MedoptError, RuntimeError):
    """Ray Train gave up (worker failures beyond train.max_failures) or ended without a checkpoint."""


class RayResourcesError(MedoptError, ValueError):
    """train.num_workers (or train.device) asks for more than the Ray cluster has."""


@dataclass(frozen=True)
class RayTrainOutcome:
    """The trained model and FitResult plus what only a Ray run knows (start-up cost, restarts, storage)."""

    model: nn.Module
    fit: FitResult
    startup_seconds: float
    """Wall time from ``trainer.fit()`` to rank 0 starting its first epoch (Ray, worker group, DDP set-up)."""
    workers: int
    """World size the run trained with."""
    restarts: tuple[int, ...]
    """The epoch each worker-group restart resumed at (empty when no worker failed)."""
    checkpoint_path: str
    """Directory of the latest checkpoint (a ``resume_from`` for a later run)."""
    run_path: str
    """Ray Train's run folder (checkpoints live under it)."""


def _wants_gpu(cfg: ExperimentConfig, cluster: dict[str, float]) -> bool:
    has_gpu = cluster.get("GPU", 0) > 0
    if cfg.train.device == "cuda" and not has_gpu:
        raise DeviceUnavailableError("train.device is 'cuda' but the Ray cluster has no GPU (use 'auto' or 'cpu')")
    return cfg.train.device == "cuda" or (cfg.train.device == "auto" and has_gpu)


def _cpus_per_worker(cfg: ExperimentConfig, cluster: dict[str, float], check: bool) -> float:
    total, workers = float(cluster.get("CPU", 0)), cfg.train.num_workers
    per = cfg.train.cpus_per_worker
    cpus = per if per is not None else max(1.0, math.floor(total / workers))
    if check and cpus * workers > total:
        raise RayResourcesError(
            f"train.num_workers={workers} needs {cpus * workers:g} CPUs ({cpus:g} each) but Ray has {total:g}")
    return cpus


def _check_local_head(cfg: ExperimentConfig) -> None:
    """Refuse a run that the local Ray head about to start could never schedule, before it starts (seconds).

    The head gets ``train.ray_num_cpus`` CPUs (default: every core) and the GPUs torch sees, as ``ray_session``
    starts it; the same checks run again against the real cluster once Ray is up.
    """
    import torch

    _wants_gpu(cfg, {"GPU": float(torch.cuda.device_count())})
    _cpus_per_worker(cfg, {"CPU": float(cfg.train.ray_num_cpus or os.cpu_count() or 1)}, check=True)


def _trainer(
    cfg: ExperimentConfig, loop_config: dict[str, Any], run_dir: Path, run_prefix: str, name: str, started: bool
) -> Any:
    import ray
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    storage_path, storage_filesystem = ray_storage(cfg.store, run_dir, run_prefix)
    cluster = ray.cluster_resources()
    use_gpu = _wants_gpu(cfg, cluster)
    cpus = _cpus_per_worker(cfg, cluster, check=started)
    loop_config["threads"] = cfg.train.num_threads or max(1, int(cpus))
    logger.info("Ray Train: %d worker(s), %g CPU each, %s, backend %s", cfg.train.num_workers, cpus,
                "GPU" if use_gpu else "CPU", "nccl" if use_gpu else "gloo")
    return TorchTrainer(
        train_worker,
        train_loop_config=loop_config,
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=cfg.train.num_workers, use_gpu=use_gpu,
                                     resources_per_worker={"CPU": cpus}),
        run_config=RunConfig(
            name=name, storage_path=storage_path, storage_filesystem=storage_filesystem,
            failure_config=FailureConfig(max_failures=cfg.train.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=cfg.train.checkpoints_to_keep, checkpoint_score_attribute=None),
        ),
    )


class _Pump:
    """Runs ``trainer.fit()`` in a thread and hands epoch rows to the callback on the caller's thread."""

    def __init__(self, trainer: Any, events: Any, on_epoch_end: EpochCallback | None) -> None:
        self.trainer, self.events, self.on_epoch_end = trainer, events, on_epoch_end
        self.seen: list[dict[str, Any]] = []
        self.result: Any = None
        self.error: BaseException | None = None
        self._last_epoch = -1

    def _fit(self) -> None:
        try:
            self.result = self.trainer.fit()
        except BaseException as exc:  # re-raised on the caller's thread
            self.error = exc

    def _handle(self, event: dict[str, Any]) -> None:
        self.seen.append(event)
        if event["event"] == "epoch" and event["epoch"] > self._last_epoch:  # a restart may repeat an epoch
            self._last_epoch = event["epoch"]
            if self.on_epoch_end is not None:
                self.on_epoch_end(int(event["epoch"]), dict(event["row"]))

    def _drain(self, timeout: float) -> None:
        from ray.util.queue import Empty

        try:
            self._handle(self.events.get(block=timeout > 0, timeout=timeout or None))
            while True:
                self._handle(self.events.get_nowait())
        except (Empty, queue.Empty):
            return

    def run(self) -> Any:
        thread = threading.Thread(target=self._fit, name="medopt-ray-fit", daemon=True)
        thread.start()
        while thread.is_alive():
            self._drain(_POLL_S)
        self._drain(0)
        if self.error is not None:
            first = (str(self.error).strip().splitlines() or [type(self.error).__name__])[0]
            raise RayTrainingError(f"Ray Train failed: {first}") from self.error
        return self.result


def fit_result_from_state(state: dict[str, Any], cfg: ExperimentConfig, model: nn.Module) -> FitResult:
    """Put the best epoch's weights into ``model`` and build the FitResult, as the local ``fit`` finishes."""
    tracker = EpochTracker.resume(cfg.train, state)
    model.load_state_dict(state["model"])
    return tracker.finish(model, state)


def _outcome(result: Any, pump: _Pump, cfg: ExperimentConfig, dataset: ImageDataset, called: float) -> RayTrainOutcome:
    if result.checkpoint is None:
        raise RayTrainingError("Ray Train finished without a checkpoint (no epoch completed)")
    with result.checkpoint.as_directory() as path:
        state = load_checkpoint_dir(path)
    model = build_model(cfg.model, ModelGeometry.from_dataset(cfg.data.preprocess, dataset))
    fit = fit_result_from_state(state, cfg, model)
    starts = [e for e in pump.seen if e["event"] == "start"]
    startup = (starts[0]["time"] - called) if starts else math.nan
    restarts = tuple(int(e["start_epoch"]) for e in starts if e["origin"] == "restart")
    for epoch in restarts:
        logger.warning("Ray Train restarted the worker group after a failure; resumed at epoch %d", epoch)
    workers = int(starts[-1]["world"]) if starts else cfg.train.num_workers
    return RayTrainOutcome(model=model, fit=fit, startup_seconds=float(startup), workers=workers, restarts=restarts,
                           checkpoint_path=str(result.checkpoint.path), run_path=str(result.path))


def run_ray_training(
    cfg: ExperimentConfig,
    dataset: ImageDataset,
    *,
    run_dir: Path,
    on_epoch_end: EpochCallback | None = None,
    resume_from: str | None = None,
    name: str | None = None,
    run_prefix: str | None = None,
) -> RayTrainOutcome:
    """Train with Ray Train and return the model, FitResult and Ray-only facts (see ``RayTrainOutcome``).

    ``resume_from`` is a checkpoint directory of an earlier run (``RayTrainOutcome.checkpoint_path``); training
    continues after its epoch with its optimizer and scheduler state. ``name`` (default: unique per call) names the
    run folder under the Ray storage: ``<run_dir>/ray_results`` for a local store, or
    ``<bucket>/<prefix>/<run_prefix>/ray_results`` for an S3 store (``run_prefix`` defaults to ``runs/<name>``).

    Raises:
        RayTrainingError: the workers failed more than train.max_failures times.
        RayResourcesError: more workers than the local Ray head has CPUs (checked before Ray starts).
        DeviceUnavailableError: train.device is 'cuda' and there is no GPU.
        ResumeError: ``resume_from`` holds no training state.
    """
    import ray
    from ray.util.queue import Queue

    if resume_from is not None and not (Path(resume_from) / STATE_FILE).is_file():
        raise ResumeError(f"resume_from: {Path(resume_from) / STATE_FILE} not found (expected a checkpoint directory "
                          "of a medopt Ray Train run, e.g. RayTrainOutcome.checkpoint_path)")
    if not cfg.train.ray_address and not ray.is_initialized():
        _check_local_head(cfg)
    name = name or f"{cfg.name}-train-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    run_prefix = run_prefix or f"runs/{name}"
    with ray_session(run_dir, address=cfg.train.ray_address, num_cpus=cfg.train.ray_num_cpus) as started:
        loop_config = {"config": cfg.model_dump(mode="json"), "dataset": ray.put(dataset),
                       "events": Queue(actor_options={"num_cpus": 0}), "resume_from": resume_from}
        trainer = _trainer(cfg, loop_config, run_dir, run_prefix, name, started)
        pump = _Pump(trainer, loop_config["events"], on_epoch_end)
        called = time.time()
        result = pump.run()
        outcome = _outcome(result, pump, cfg, dataset, called)
        loop_config["events"].shutdown()
    logger.info("Ray Train done: %d epochs, start-up %.1f s, checkpoints in %s", outcome.fit.epochs_run,
                outcome.startup_seconds, outcome.run_path)
    return outcome


def train_with_ray(
    cfg: ExperimentConfig,
    dataset: ImageDataset,
    *,
    run_dir: Path,
    on_epoch_end: EpochCallback | None = None,
    resume_from: str | None = None,
    run_prefix: str | None = None,
) -> tuple[nn.Module, FitResult]:
    """The Ray counterpart of ``train_model``: same inputs and outputs, training spread over Ray Train workers."""
    outcome = run_ray_training(cfg, dataset, run_dir=run_dir, on_epoch_end=on_epoch_end, resume_from=resume_from,
                               run_prefix=run_prefix)
    return outcome.model, outcome.fit
