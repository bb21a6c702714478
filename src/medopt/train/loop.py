"""The pure training epoch function and the local trainer ``fit`` built on it.

``train_one_epoch`` touches only its arguments (the model and optimizer are updated in place), so the local trainer,
a Ray Train worker and a federated client all call it; the validation pass is ``medopt.evaluate.inference``'s and
the epoch bookkeeping ``medopt.train.tracker``'s; ``checkpoint_state`` / ``restore_state`` let a run resume mid-way.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from medopt.config import TrainConfig
from medopt.data.types import Task, check_task
from medopt.errors import MedoptError
from medopt.evaluate.inference import EvalOutput, MetricsError, epoch_scores, evaluate_epoch
from medopt.models.transfer import freeze_frozen_batchnorm
from medopt.train.losses import build_loss
from medopt.train.optim import build_optimizer, build_scheduler
from medopt.train.seeding import epoch_seed, reseed_globals, resolve_device
from medopt.train.state import TrainingStateError, checkpoint_state, restore_state
from medopt.train.tracker import HISTORY_KEYS, EpochTracker, FitResult, epoch_row

logger = logging.getLogger(__name__)

MetricsFn = Callable[[np.ndarray, np.ndarray, str], Mapping[str, Any]]
__all__ = [
    "HISTORY_KEYS", "EvalOutput", "FitResult", "MetricsError", "NonFiniteLossError", "TrainingStateError",
    "checkpoint_state", "evaluate_epoch", "fit", "restore_state", "train_one_epoch",
]


class NonFiniteLossError(MedoptError, FloatingPointError):
    """The training loss became NaN/inf: the learning rate is likely too high or the inputs are broken."""


def _num_batches(loader: Iterable[Any], name: str) -> int:
    try:
        n = len(loader)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(f"{name} has no len(); the per-batch lr schedule needs the number of batches") from None
    if n < 1:
        raise ValueError(f"{name} is empty")
    return n


def train_one_epoch(
    model: nn.Module,
    loader: Iterable[tuple[Tensor, Tensor]],
    loss_fn: nn.Module,
    optimizer: Optimizer,
    *,
    scheduler: LRScheduler | None = None,
    epoch: int = 0,
    device: torch.device,
    augment: Callable[[Tensor], Tensor] | None = None,
    grad_clip: float | None = None,
) -> dict[str, float]:
    """One pass over ``loader``; the scheduler is stepped before batch i at ``epoch + i / len(loader)``.

    ``augment`` is applied to each input batch before it moves to ``device`` (training only).

    Returns:
        {"loss": sample-weighted mean loss, "samples", "seconds", "samples_per_s", "lr": lr of the last batch}.
    """
    if grad_clip is not None and grad_clip <= 0:
        raise ValueError(f"grad_clip must be > 0 or None, got {grad_clip}")
    steps = _num_batches(loader, "train loader") if scheduler is not None else 0
    model.train()
    freeze_frozen_batchnorm(model)  # a frozen backbone's BatchNorm keeps its running statistics
    total, samples, lr = torch.zeros((), device=device), 0, math.nan
    start = time.perf_counter()
    for i, (x, y) in enumerate(loader):
        if scheduler is not None:
            scheduler.step(epoch + i / steps)
        if augment is not None:
            x = augment(x)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        lr = float(optimizer.param_groups[0]["lr"])
        total += loss.detach() * x.shape[0]
        samples += int(x.shape[0])
    seconds = time.perf_counter() - start
    if samples == 0:
        raise ValueError("train loader yielded no batches")
    mean_loss = float(total.item()) / samples
    if not math.isfinite(mean_loss):
        raise NonFiniteLossError(f"training loss became {mean_loss} in epoch {epoch} (lr {lr:g}); lower train.lr")
    return {"loss": mean_loss, "samples": float(samples), "seconds": seconds,
            "samples_per_s": samples / max(seconds, 1e-12), "lr": lr}


# ------------------------------------------------------------------------------------------------------ trainer
@dataclass(frozen=True)
class _Run:
    model: nn.Module
    train_loader: Iterable[tuple[Tensor, Tensor]]
    val_loader: Iterable[tuple[Tensor, Tensor]]
    loss_fn: nn.Module
    optimizer: Optimizer
    scheduler: LRScheduler | None
    device: torch.device
    augment: Callable[[Tensor], Tensor] | None
    task: Task
    metrics_fn: MetricsFn
    grad_clip: float | None = None


def _resume(state: Mapping[str, Any], start_epoch: int, run: _Run, cfg: TrainConfig) -> tuple[int, EpochTracker]:
    """Restore model/optimizer/scheduler, the history and the best-so-far tracking from a training state."""
    first = restore_state(state, run.model, run.optimizer, run.scheduler)
    if start_epoch not in (0, first):
        raise ValueError(f"fit: start_epoch={start_epoch} disagrees with the training state (resumes at {first})")
    return first, EpochTracker.resume(cfg, state, run.model)


def _epoch_row(run: _Run, epoch: int) -> dict[str, float]:
    start = time.perf_counter()
    train = train_one_epoch(run.model, run.train_loader, run.loss_fn, run.optimizer, scheduler=run.scheduler,
                            epoch=epoch, device=run.device, augment=run.augment, grad_clip=run.grad_clip)
    val = evaluate_epoch(run.model, run.val_loader, run.loss_fn, device=run.device, task=run.task)
    scores = epoch_scores(run.metrics_fn(val.y_true, val.y_prob, run.task))
    row = epoch_row(epoch, train, val.loss, scores, time.perf_counter() - start)
    logger.info("epoch %d train_loss %.4f val_loss %.4f val_auc %.4f val_acc %.4f lr %.3g (%.1fs)", epoch,
                row["train_loss"], row["val_loss"], row["val_auc"], row["val_acc"], row["lr"], row["epoch_seconds"])
    return row


def fit(
    model: nn.Module,
    train_loader: Iterable[tuple[Tensor, Tensor]],
    val_loader: Iterable[tuple[Tensor, Tensor]],
    cfg: TrainConfig,
    *,
    task: Task,
    metrics_fn: MetricsFn,
    class_counts: np.ndarray | None = None,
    augment: Callable[[Tensor], Tensor] | None = None,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
    start_epoch: int = 0,
    state: Mapping[str, Any] | None = None,
    device: torch.device | None = None,
    loss_fn: nn.Module | None = None,
) -> FitResult:
    """Train for epochs ``start_epoch .. cfg.epochs - 1``, select on ``cfg.monitor``, stop early, keep the best.

    Global RNGs are reseeded from (cfg.seed, epoch) at every epoch, so a run resumed from ``state`` (a
    ``FitResult.training_state()`` / ``checkpoint_state`` dict) matches an uninterrupted one when the loaders draw
    from the global generator. ``metrics_fn(y_true, y_prob, task)`` must return acc, bacc and auc.
    ``device`` defaults to ``cfg.device``; ``on_epoch_end(epoch, row)`` receives each history row.
    ``loss_fn`` replaces the task loss built from ``cfg`` (e.g. a distillation loss), for training and validation.
    """
    check_task(task)
    if start_epoch < 0:
        raise ValueError(f"fit: start_epoch must be >= 0, got {start_epoch}")
    if cfg.num_threads is not None:
        torch.set_num_threads(cfg.num_threads)
    device = resolve_device(cfg.device) if device is None else device
    model.to(device)
    optimizer = build_optimizer(model.parameters(), cfg)
    loss = build_loss(task, cfg, class_counts) if loss_fn is None else loss_fn
    run = _Run(model, train_loader, val_loader, loss.to(device), optimizer,
               build_scheduler(optimizer, cfg, _num_batches(train_loader, "train_loader")), device, augment, task,
               metrics_fn, cfg.grad_clip)
    first, tracker = ((start_epoch, EpochTracker.for_config(cfg)) if state is None
                      else _resume(state, start_epoch, run, cfg))
    if not tracker.finished_before(first, cfg.epochs):
        for epoch in range(first, cfg.epochs):
            reseed_globals(epoch_seed(cfg.seed, epoch))
            row = _epoch_row(run, epoch)
            tracker.record(row, model)
            if on_epoch_end is not None:
                on_epoch_end(epoch, dict(row))
            if tracker.stops_after(epoch, cfg.epochs):
                break
    last = int(tracker.history["epoch"][-1]) if tracker.history["epoch"] else first - 1
    state_after = checkpoint_state(model, optimizer, run.scheduler, last, tracker.history, extra=tracker.extra())
    return tracker.finish(model, state_after)
