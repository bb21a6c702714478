"""A training run's full state (weights, optimizer, scheduler, history) as a torch.save-able dict, for resuming."""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from medopt.errors import MedoptError

logger = logging.getLogger(__name__)

CHECKPOINT_KEYS: tuple[str, ...] = ("epoch", "model", "optimizer", "scheduler", "history")


class TrainingStateError(MedoptError, ValueError):
    """A training-state dict is malformed or does not match the model/optimizer/scheduler it is restored into."""


def _cpu_copy(obj: Any) -> Any:
    """Deep copy with every tensor moved to CPU, so a checkpoint is independent of later training and devices."""
    if isinstance(obj, Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, Mapping):
        return {k: _cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cpu_copy(v) for v in obj)
    return copy.deepcopy(obj)


def checkpoint_state(
    model: nn.Module,
    optimizer: Optimizer | None,
    scheduler: LRScheduler | None,
    epoch: int,
    history: Mapping[str, list[float]],
    *,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything needed to resume after ``epoch`` (the last completed epoch, 0-based), as CPU tensors.

    ``extra`` holds trainer bookkeeping (``fit`` keeps the best weights there); the dict is ``torch.save``-able.
    """
    return {
        "epoch": int(epoch),
        "model": _cpu_copy(model.state_dict()),
        "optimizer": None if optimizer is None else _cpu_copy(optimizer.state_dict()),
        "scheduler": None if scheduler is None else _cpu_copy(scheduler.state_dict()),
        "history": {k: [float(v) for v in vals] for k, vals in history.items()},
        "extra": _cpu_copy(dict(extra or {})),
    }


def restore_state(
    state: Mapping[str, Any], model: nn.Module, optimizer: Optimizer | None, scheduler: LRScheduler | None
) -> int:
    """Load a ``checkpoint_state`` dict into fresh objects; returns the epoch to resume at (saved epoch + 1).

    Raises:
        TrainingStateError: missing keys, weights that do not fit the model, or a scheduler the checkpoint lacks.
    """
    if not isinstance(state, Mapping):
        raise TrainingStateError(f"training state must be a dict, got {type(state).__name__}")
    missing = [k for k in CHECKPOINT_KEYS if k not in state]
    if missing:
        raise TrainingStateError(f"training state is missing keys {missing}")
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise TrainingStateError(f"training state 'model' does not fit the model: {exc}") from None
    if optimizer is not None:
        if state["optimizer"] is None:
            raise TrainingStateError("training state has no 'optimizer' state but an optimizer was given")
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        if state["scheduler"] is None:
            raise TrainingStateError("training state has no 'scheduler' state but a scheduler was given")
        scheduler.load_state_dict(state["scheduler"])
    elif state["scheduler"] is not None:
        logger.warning("training state has scheduler state but no scheduler was given; ignoring it")
    return int(state["epoch"]) + 1
