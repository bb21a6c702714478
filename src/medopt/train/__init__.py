"""Training: the epoch function, the local ``fit`` trainer, epoch bookkeeping, optimizers, schedules and losses.

Importing this package loads torch (its modules need it) but does no other work.
"""

from __future__ import annotations

from medopt.train.adaptive import AdaptiveMomentumLR
from medopt.train.early_stopping import EarlyStopping
from medopt.train.history import load_history, save_history
from medopt.evaluate.inference import EvalOutput, evaluate_epoch
from medopt.train.loop import fit, train_one_epoch
from medopt.train.losses import build_loss, count_classes
from medopt.train.optim import OPTIMIZER_DEFAULTS, OPTIMIZERS, build_optimizer, build_scheduler
from medopt.train.seeding import epoch_seed, resolve_device, round_seed, seed_everything
from medopt.train.state import TrainingStateError, checkpoint_state, restore_state
from medopt.train.tracker import HISTORY_KEYS, EpochTracker, FitResult, epoch_row

__all__ = [
    "HISTORY_KEYS",
    "OPTIMIZERS",
    "OPTIMIZER_DEFAULTS",
    "AdaptiveMomentumLR",
    "EarlyStopping",
    "EpochTracker",
    "EvalOutput",
    "FitResult",
    "build_loss",
    "build_optimizer",
    "build_scheduler",
    "checkpoint_state",
    "count_classes",
    "epoch_row",
    "epoch_seed",
    "evaluate_epoch",
    "fit",
    "load_history",
    "resolve_device",
    "restore_state",
    "round_seed",
    "save_history",
    "seed_everything",
    "train_one_epoch",
    "TrainingStateError",
]
