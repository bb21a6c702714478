"""The per-worker loop Ray Train runs: the local trainer's epoch functions under DDP, one checkpoint per epoch.

Each worker re-validates the experiment config, fetches the dataset from Ray's object store, builds the model through
``build_model``, shards the training split with a ``DistributedSampler`` and calls ``train_one_epoch``. Rank 0 alone
evaluates the full validation split with the unwrapped model (a DDP forward on one rank would wait for the others)
and broadcasts the history row (``epoch_row``), so every rank's ``EpochTracker`` (the local ``fit``'s) takes the
same early-stopping decision. Rank 0 writes the checkpoint
(``checkpoint_state``: model, optimizer, scheduler, history, best weights); a restarted worker group resumes from it.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from medopt.config import ExperimentConfig
from medopt.data.loader import label_tensor
from medopt.data.transforms import augment_batch, preprocess_batch
from medopt.data.types import ImageDataset
from medopt.errors import MedoptError
from medopt.evaluate.inference import epoch_scores, evaluate_epoch
from medopt.evaluate.metrics import compute_metrics
from medopt.models.geometry import ModelGeometry, build_model
from medopt.train.loop import train_one_epoch
from medopt.train.losses import build_loss, count_classes
from medopt.train.optim import build_optimizer, build_scheduler
from medopt.train.seeding import epoch_seed, reseed_globals, seed_everything
from medopt.train.state import checkpoint_state, restore_state
from medopt.train.tracker import EpochTracker, epoch_row

logger = logging.getLogger(__name__)

STATE_FILE = "training_state.pt"
"""File name of the ``checkpoint_state`` dict inside every Ray checkpoint directory."""


class ResumeError(MedoptError, ValueError):
    """``resume_from`` does not name a checkpoint directory holding a training state."""


def load_checkpoint_dir(path: str | Path) -> dict[str, Any]:
    """Read the training state saved in a Ray checkpoint directory (CPU tensors).

    Raises:
        ResumeError: the directory or its ``training_state.pt`` is missing.
    """
    file = Path(path) / STATE_FILE
    if not file.is_file():
        raise ResumeError(f"resume_from: {file} not found (expected a Ray Train checkpoint directory of medopt)")
    return torch.load(file, map_location="cpu", weights_only=True)


def per_worker_batch(batch_size: int, world: int) -> int:
    """train.batch_size is the global batch: each of ``world`` workers takes an equal share (at least 1)."""
    return max(1, -(-batch_size // world))


@dataclass
class _Parts:
    model: nn.Module
    module: nn.Module
    sampler: DistributedSampler
    train_loader: DataLoader
    val_loader: DataLoader
    loss_fn: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    device: torch.device
    generator: torch.Generator


def _build(cfg: ExperimentConfig, dataset: ImageDataset, rank: int, world: int) -> _Parts:
    from ray.train.torch import get_device, prepare_model

    seed_everything(cfg.train.seed)  # identical initial weights on every rank (DDP also broadcasts rank 0's)
    module = build_model(cfg.model, ModelGeometry.from_dataset(cfg.data.preprocess, dataset))
    pre, task, device = cfg.data.preprocess, dataset.task, get_device()
    train_set = TensorDataset(preprocess_batch(dataset.train.images, pre), label_tensor(dataset.train, task))
    sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=cfg.train.seed)
    train_loader = DataLoader(train_set, batch_size=per_worker_batch(cfg.train.batch_size, world), sampler=sampler)
    val_set = TensorDataset(preprocess_batch(dataset.val.images, pre), label_tensor(dataset.val, task))
    val_loader = DataLoader(val_set, batch_size=max(cfg.train.batch_size, 256), shuffle=False)
    model = prepare_model(module)  # DDP (gloo on CPU, NCCL on GPU) when world > 1
    counts = count_classes(dataset.train.labels, task, dataset.num_classes)
    loss_fn = build_loss(task, cfg.train, counts).to(device)
    optimizer = build_optimizer(module.parameters(), cfg.train)
    scheduler = build_scheduler(optimizer, cfg.train, len(train_loader))
    return _Parts(model, module, sampler, train_loader, val_loader, loss_fn, optimizer, scheduler, device,
                  torch.Generator())


def _share(row: dict[str, float] | None, world: int) -> dict[str, float]:
    """Broadcast rank 0's row to every rank (identity with one worker)."""
    if world == 1:
        if row is None:
            raise RuntimeError("rank 0 produced no history row")
        return row
    box = [row]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def _epoch(parts: _Parts, cfg: ExperimentConfig, dataset: ImageDataset, epoch: int, rank: int,
           world: int) -> dict[str, float]:
    """Train one epoch on this rank's shard; rank 0 evaluates; every rank returns the same history row."""
    seed = epoch_seed(cfg.train.seed, epoch, rank)
    reseed_globals(seed)
    parts.sampler.set_epoch(epoch)
    parts.generator.manual_seed(seed)
    aug_cfg = cfg.data.augment
    augment = partial(augment_batch, cfg=aug_cfg, generator=parts.generator, crop=cfg.data.preprocess) \
        if aug_cfg.enabled else None
    start = time.perf_counter()
    train = train_one_epoch(parts.model, parts.train_loader, parts.loss_fn, parts.optimizer,
                            scheduler=parts.scheduler, epoch=epoch, device=parts.device, augment=augment,
                            grad_clip=cfg.train.grad_clip)
    row = None
    if rank == 0:
        val = evaluate_epoch(parts.module, parts.val_loader, parts.loss_fn, device=parts.device, task=dataset.task)
        scores = epoch_scores(compute_metrics(val.y_true, val.y_prob, dataset.task, dataset.class_names))
        row = epoch_row(epoch, train, val.loss, scores, time.perf_counter() - start, world)
        logger.info("rank 0 epoch %d train_loss %.4f val_auc %.4f (%.1fs)", epoch, row["train_loss"],
                    row["val_auc"], row["epoch_seconds"])
    return _share(row, world)


def _report(parts: _Parts, tracker: EpochTracker, row: dict[str, float], rank: int) -> None:
    """Every rank reports the row; rank 0 attaches the checkpoint of the epoch just finished."""
    import ray.train

    with tempfile.TemporaryDirectory(prefix="medopt-ckpt-") as tmp:
        checkpoint = None
        if rank == 0:
            state = checkpoint_state(parts.module, parts.optimizer, parts.scheduler, int(row["epoch"]),
                                     tracker.history, extra=tracker.extra())
            torch.save(state, Path(tmp) / STATE_FILE)
            checkpoint = ray.train.Checkpoint.from_directory(tmp)
        ray.train.report(dict(row), checkpoint=checkpoint)


def _starting_state(resume_from: str | None) -> tuple[dict[str, Any] | None, str]:
    import ray.train

    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as path:
            return load_checkpoint_dir(path), "restart"
    if resume_from:
        return load_checkpoint_dir(resume_from), "resume_from"
    return None, "fresh"


def _emit(events: Any, rank: int, payload: dict[str, Any]) -> None:
    if events is not None and rank == 0:
        events.put({"rank": rank, "pid": os.getpid(), "time": time.time(), **payload})


def train_worker(loop_config: dict[str, Any]) -> None:
    """Ray Train's ``train_loop_per_worker``: keys "config" (JSON dict), "dataset" (ObjectRef), "events",
    "resume_from" and "threads"."""
    import ray
    import ray.train

    cfg = ExperimentConfig.model_validate(loop_config["config"])
    torch.set_num_threads(int(loop_config["threads"]))
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    dataset: ImageDataset = ray.get(loop_config["dataset"])
    events = loop_config.get("events")
    parts = _build(cfg, dataset, rank, world)
    state, origin = _starting_state(loop_config.get("resume_from"))
    first, tracker = 0, EpochTracker.for_config(cfg.train)
    if state is not None:
        first = restore_state(state, parts.module, parts.optimizer, parts.scheduler)
        tracker = EpochTracker.resume(cfg.train, state, parts.module)
    _emit(events, rank, {"event": "start", "start_epoch": first, "origin": origin, "world": world})
    if tracker.finished_before(first, cfg.train.epochs):
        return
    for epoch in range(first, cfg.train.epochs):
        row = _epoch(parts, cfg, dataset, epoch, rank, world)
        tracker.record(row, parts.module if rank == 0 else None)
        stop = tracker.stops_after(epoch, cfg.train.epochs)
        _report(parts, tracker, row, rank)
        _emit(events, rank, {"event": "epoch", "epoch": epoch, "row": row})
        if stop:
            break
