"""Epoch bookkeeping shared by every trainer: the history row, best-epoch selection, early stopping, the FitResult.

Why one module: the local ``fit`` and the Ray Train worker must select, stop and resume identically, or a run's
result would depend on the backend it ran on. Both record rows built by ``epoch_row`` into an ``EpochTracker``,
save its ``extra`` in their training state, resume with ``EpochTracker.resume`` and end with ``finish``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from medopt.config import TrainConfig
from medopt.train.early_stopping import EarlyStopping
from medopt.train.state import TrainingStateError

logger = logging.getLogger(__name__)

HISTORY_KEYS: tuple[str, ...] = (
    "epoch", "train_loss", "val_loss", "val_acc", "val_bacc", "val_auc", "lr", "epoch_seconds", "samples_per_s",
)


@dataclass(frozen=True)
class FitResult:
    """What a trainer learned; the model itself holds the best epoch's weights on return.

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


def epoch_row(epoch: int, train: Mapping[str, float], val_loss: float, val_scores: Mapping[str, float],
              seconds: float, world: int = 1) -> dict[str, float]:
    """One history row from ``train_one_epoch``'s stats and the validation pass (``world`` ranks each trained)."""
    return {"epoch": float(epoch), "train_loss": float(train["loss"]), "val_loss": float(val_loss),
            **{k: float(v) for k, v in val_scores.items()}, "lr": float(train["lr"]), "epoch_seconds": seconds,
            "samples_per_s": train["samples"] * world / max(train["seconds"], 1e-12)}


def _cpu_snapshot(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


class EpochTracker:
    """History rows, early stopping on ``monitor``, the best epoch's weights and whether training stopped early."""

    def __init__(self, monitor: str, patience: int | None) -> None:
        self.monitor = monitor
        self.history: dict[str, list[float]] = {k: [] for k in HISTORY_KEYS}
        self.stopper = EarlyStopping(patience, "min" if monitor == "val_loss" else "max")
        self.best_model: dict[str, Tensor] | None = None
        self.stopped = False

    @classmethod
    def for_config(cls, cfg: TrainConfig) -> EpochTracker:
        """An empty tracker for ``cfg.monitor`` and ``cfg.early_stopping_patience``."""
        return cls(cfg.monitor, cfg.early_stopping_patience)

    @classmethod
    def resume(cls, cfg: TrainConfig, state: Mapping[str, Any], model: nn.Module | None = None) -> EpochTracker:
        """Replay a training state's history; ``model`` holds its restored weights (the best ones when the last
        epoch was the best and the state saved no best weights).

        Raises:
            TrainingStateError: the state's history lacks a history key.
        """
        history = state["history"]
        missing = [k for k in HISTORY_KEYS if k not in history]
        if missing:
            raise TrainingStateError(f"training state history is missing {missing}")
        tracker = cls.for_config(cfg)
        for i in range(len(history["epoch"])):
            tracker.record({k: history[k][i] for k in HISTORY_KEYS})
        extra = state.get("extra") or {}
        tracker.best_model = extra.get("best_model")
        tracker.stopped = bool(extra.get("stopped_early", False))
        if tracker.best_model is None and model is not None and tracker.stopper.best_epoch == int(state["epoch"]):
            tracker.best_model = _cpu_snapshot(model)
        return tracker

    def record(self, row: Mapping[str, float], model: nn.Module | None = None) -> None:
        """Append one history row; on a new best, snapshot ``model`` (None when replaying a saved history)."""
        for key in HISTORY_KEYS:
            self.history[key].append(float(row[key]))
        if self.stopper.update(int(row["epoch"]), row[self.monitor]) and model is not None:
            self.best_model = _cpu_snapshot(model)

    def stops_after(self, epoch: int, epochs: int) -> bool:
        """Whether training ends early after ``epoch`` of ``epochs`` (patience ran out before the last epoch)."""
        self.stopped = self.stopper.should_stop and epoch + 1 < epochs
        if self.stopped:
            logger.info("early stop after epoch %d (best %s at epoch %s)", epoch, self.monitor,
                        self.stopper.best_epoch)
        return self.stopped

    def finished_before(self, first: int, epochs: int) -> bool:
        """Whether a run resuming at epoch ``first`` has nothing left to train (it had stopped early)."""
        self.stopped = self.stopped or (self.stopper.should_stop and first < epochs)
        return self.stopped

    def extra(self) -> dict[str, Any]:
        """The bookkeeping a training state carries besides the history, for ``resume``."""
        return {"best_model": self.best_model, "stopped_early": self.stopped}

    def finish(self, model: nn.Module, state: dict[str, Any]) -> FitResult:
        """Put the best epoch's weights into ``model`` (which holds the last epoch's) and build the FitResult.

        ``state`` is the training state after the last epoch run; it becomes ``FitResult.training_state()``.
        """
        last = int(state["epoch"])
        best_epoch, best_score = self.stopper.best_epoch, self.stopper.best_score
        if best_epoch is None:
            logger.warning("%s was never finite; keeping the last epoch's weights", self.monitor)
            best_epoch, best_score = last, math.nan
        elif best_epoch != last:
            if self.best_model is None:
                logger.warning("best epoch %d predates the resumed checkpoint; keeping the last weights", best_epoch)
            else:
                model.load_state_dict(self.best_model)
        return FitResult(best_epoch=int(best_epoch), best_score=float(best_score),
                         epochs_run=len(self.history["epoch"]), stopped_early=self.stopped, history=self.history,
                         monitor=self.monitor, _state=state)
