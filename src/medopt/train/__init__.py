"""Training: pure epoch functions, the local ``fit`` trainer, optimizers, schedules and losses.

Importing this package loads torch (its modules need it) but does no other work.
"""

from __future__ import annotations

from medopt.train.adaptive import AdaptiveMomentumLR
from medopt.train.early_stopping import EarlyStopping
from medopt.train.history import load_history, save_history
from medopt.train.loop import (
    EvalOutput,
    FitResult,
    checkpoint_state,
    evaluate_epoch,
    fit,
    restore_state,
    train_one_epoch,
)
from medopt.train.losses import build_loss, count_classes
from medopt.train.optim import OPTIMIZER_DEFAULTS, OPTIMIZERS, build_optimizer, build_scheduler
from medopt.train.seeding import resolve_device, seed_everything

__all__ = [
    "OPTIMIZERS",
    "OPTIMIZER_DEFAULTS",
    "AdaptiveMomentumLR",
    "EarlyStopping",
    "EvalOutput",
    "FitResult",
    "build_loss",
    "build_optimizer",
    "build_scheduler",
    "checkpoint_state",
    "count_classes",
    "evaluate_epoch",
    "fit",
    "load_history",
    "resolve_device",
    "restore_state",
    "save_history",
    "seed_everything",
    "train_one_epoch",
]
