"""Pure train / evaluate epoch functions and the local trainer ``fit`` built on them.

The epoch functions touch only their arguments (the model and optimizer are updated in place), so the local trainer
and a Ray Train worker can both call them; ``checkpoint_state`` / ``restore_state`` let a run resume mid-way.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from medopt.config import TrainConfig
from medopt.errors import MedoptError
from medopt.models.transfer import freeze_frozen_batchnorm
from medopt.train.early_stopping import EarlyStopping
from medopt.train.losses import Task, build_loss, check_task
from medopt.train.optim import build_optimizer, build_scheduler
from medopt.train.seeding import resolve_device
from medopt.train.state import CheckpointError, checkpoint_state, restore_state

logger = logging.getLogger(__name__)

MetricsFn = Callable[[np.ndarray, np.ndarray, str], Mapping[str, Any]]
HISTORY_KEYS: tuple[str, ...] = (
    "epoch", "train_loss", "val_loss", "val_acc", "val_bacc", "val_auc", "lr", "epoch_seconds", "samples_per_s",
)
REQUIRED_METRICS: tuple[str, ...] = ("acc", "bacc", "auc")


class NonFiniteLossError(MedoptError, FloatingPointError):
    """The training loss became NaN/inf: the learning rate is likely too high or the inputs are broken."""


class MetricsError(MedoptError, ValueError):
    """``metrics_fn`` did not return the metrics the trainer records and monitors."""


@dataclass(frozen=True)
class EvalOutput:
    """Mean loss plus labels and probabilities (softmax (N,C) or sigmoid (N,K)) of one evaluation pass."""

    loss: float
    y_true: np.ndarray
    y_prob: np.ndarray


@dataclass(frozen=True)
class FitResult:
    """What ``fit`` learned; the model itself holds the best epoch's weights on return.

    ``epochs_run`` counts the epochs recorded in ``history`` (a resumed run includes the epochs before the resume).
    """

    best_epoch: int
    best_score: float
    epochs_run: int
    stopped_early: bool
    history: dict[str, list[float]]
    monitor: str
    _state: dict[str, Any] = field(repr=False, compare=False)

    def training_state(self) -> dict[str, Any]:
        """The checkpoint at the end of the last epoch run (last weights, not best), to resume with ``fit(state=)``."""
        return self._state


def _check_batch(logits: Tensor, y: Tensor, task: Task) -> None:
    if task == "multilabel":
        if logits.shape != y.shape:
            raise ValueError(f"multilabel: logits {tuple(logits.shape)} and targets {tuple(y.shape)} must match")
        return
    if logits.ndim != 2 or logits.shape[1] < 2:
        raise ValueError(f"{task}: the model must output (B, C>=2) logits for CrossEntropy, got {tuple(logits.shape)}")
    if y.dtype != torch.int64 or y.ndim != 1:
        raise ValueError(f"{task}: targets must be int64 (B,), got {y.dtype} {tuple(y.shape)}")


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


@torch.no_grad()
def evaluate_epoch(
    model: nn.Module,
    loader: Iterable[tuple[Tensor, Tensor]],
    loss_fn: nn.Module | None,
    *,
    device: torch.device,
    task: Task,
) -> EvalOutput:
    """Loss and probabilities over ``loader`` in eval mode, without gradients (loss is NaN without ``loss_fn``)."""
    check_task(task)
    model.eval()
    total, samples = torch.zeros((), device=device), 0
    probs: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        logits = model(x)
        _check_batch(logits, y, task)
        if loss_fn is not None:
            total += loss_fn(logits, y) * x.shape[0]
        samples += int(x.shape[0])
        p = torch.sigmoid(logits.float()) if task == "multilabel" else torch.softmax(logits.float(), dim=1)
        probs.append(p.cpu().numpy())
        labels.append(y.cpu().numpy())
    if samples == 0:
        raise ValueError("evaluation loader yielded no batches")
    loss = float(total.item()) / samples if loss_fn is not None else math.nan
    return EvalOutput(loss=loss, y_true=np.concatenate(labels), y_prob=np.concatenate(probs))


# ------------------------------------------------------------------------------------------------------ trainer
def _seed_epoch(seed: int, epoch: int) -> None:
    """Reseed the global generators from (seed, epoch), so a resumed run shuffles and drops out like a straight one."""
    s = int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


def _snapshot(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@dataclass
class _Progress:
    history: dict[str, list[float]]
    stopper: EarlyStopping
    best_model: dict[str, Tensor] | None = None

    def record(self, row: Mapping[str, float], model: nn.Module | None, monitor: str) -> None:
        """Append one history row; on a new best, snapshot ``model`` (None when replaying a resumed history)."""
        for key in HISTORY_KEYS:
            self.history[key].append(float(row[key]))
        if self.stopper.update(int(row["epoch"]), row[monitor]) and model is not None:
            self.best_model = _snapshot(model)


def _new_progress(cfg: TrainConfig) -> _Progress:
    mode = "min" if cfg.monitor == "val_loss" else "max"
    return _Progress({k: [] for k in HISTORY_KEYS}, EarlyStopping(cfg.early_stopping_patience, mode))


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


def _resume(state: Mapping[str, Any], start_epoch: int, run: _Run, cfg: TrainConfig) -> tuple[int, _Progress]:
    """Restore model/optimizer/scheduler, the history and the best-so-far tracking from a checkpoint."""
    first = restore_state(state, run.model, run.optimizer, run.scheduler)
    if start_epoch not in (0, first):
        raise ValueError(f"fit: start_epoch={start_epoch} disagrees with the training state (resumes at {first})")
    missing = [k for k in HISTORY_KEYS if k not in state["history"]]
    if missing:
        raise CheckpointError(f"training state history is missing {missing}")
    progress = _new_progress(cfg)
    for i in range(len(state["history"]["epoch"])):
        progress.record({k: state["history"][k][i] for k in HISTORY_KEYS}, None, cfg.monitor)
    best = (state.get("extra") or {}).get("best_model")
    if best is not None:
        progress.best_model = {k: v.to(run.device) for k, v in best.items()}
    elif progress.stopper.best_epoch == first - 1:
        progress.best_model = _snapshot(run.model)  # the restored weights are the best so far
    return first, progress


def _val_metrics(metrics_fn: MetricsFn, y_true: np.ndarray, y_prob: np.ndarray, task: Task) -> dict[str, float]:
    metrics = metrics_fn(y_true, y_prob, task)
    missing = [k for k in REQUIRED_METRICS if k not in metrics]
    if missing:
        raise MetricsError(f"metrics_fn must return {list(REQUIRED_METRICS)}; missing {missing}")
    return {f"val_{k}": float(metrics[k]) for k in REQUIRED_METRICS}


def _epoch_row(run: _Run, epoch: int) -> dict[str, float]:
    start = time.perf_counter()
    train = train_one_epoch(run.model, run.train_loader, run.loss_fn, run.optimizer, scheduler=run.scheduler,
                            epoch=epoch, device=run.device, augment=run.augment, grad_clip=run.grad_clip)
    val = evaluate_epoch(run.model, run.val_loader, run.loss_fn, device=run.device, task=run.task)
    row = {"epoch": float(epoch), "train_loss": train["loss"], "val_loss": val.loss,
           **_val_metrics(run.metrics_fn, val.y_true, val.y_prob, run.task), "lr": train["lr"],
           "epoch_seconds": time.perf_counter() - start, "samples_per_s": train["samples_per_s"]}
    logger.info("epoch %d train_loss %.4f val_loss %.4f val_auc %.4f val_acc %.4f lr %.3g (%.1fs)", epoch,
                row["train_loss"], row["val_loss"], row["val_auc"], row["val_acc"], row["lr"], row["epoch_seconds"])
    return row


def _finish(run: _Run, progress: _Progress, cfg: TrainConfig, last: int, stopped: bool) -> FitResult:
    """Checkpoint the last epoch, then put the best epoch's weights back into the model."""
    state = checkpoint_state(run.model, run.optimizer, run.scheduler, last, progress.history,
                             extra={"best_model": progress.best_model})
    best_epoch, best_score = progress.stopper.best_epoch, progress.stopper.best_score
    if best_epoch is None:
        logger.warning("%s was never finite; keeping the last epoch's weights", cfg.monitor)
        best_epoch, best_score = last, math.nan
    elif best_epoch != last:
        if progress.best_model is None:
            logger.warning("best epoch %d predates the resumed checkpoint; keeping the last weights", best_epoch)
        else:
            run.model.load_state_dict(progress.best_model)
    return FitResult(best_epoch=int(best_epoch), best_score=float(best_score),
                     epochs_run=len(progress.history["epoch"]), stopped_early=stopped, history=progress.history,
                     monitor=cfg.monitor, _state=state)


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
    first, progress = (start_epoch, _new_progress(cfg)) if state is None else _resume(state, start_epoch, run, cfg)
    stopped = progress.stopper.should_stop and first < cfg.epochs
    for epoch in range(first, cfg.epochs if not stopped else first):
        _seed_epoch(cfg.seed, epoch)
        row = _epoch_row(run, epoch)
        progress.record(row, model, cfg.monitor)
        if on_epoch_end is not None:
            on_epoch_end(epoch, dict(row))
        if progress.stopper.should_stop and epoch + 1 < cfg.epochs:
            logger.info("early stop after epoch %d (best %s at epoch %s)", epoch, cfg.monitor,
                        progress.stopper.best_epoch)
            stopped = True
            break
    last = int(progress.history["epoch"][-1]) if progress.history["epoch"] else first - 1
    return _finish(run, progress, cfg, last, stopped)
