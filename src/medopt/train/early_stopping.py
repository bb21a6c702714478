"""Early stopping on a monitored validation score."""

from __future__ import annotations

import math
from typing import Literal


class EarlyStopping:
    """Tracks the best score and says when ``patience`` epochs have passed without beating it.

    A NaN score (e.g. AUC on a one-class validation batch) never counts as an improvement.

    Args:
        patience: Epochs without improvement before stopping; None never stops (best is still tracked).
        mode: 'max' when higher is better (auc, acc), 'min' when lower is better (loss).
        min_delta: An improvement must beat the best by more than this.
    """

    def __init__(self, patience: int | None, mode: Literal["max", "min"], min_delta: float = 0.0) -> None:
        if patience is not None and patience < 1:
            raise ValueError(f"early stopping patience must be >= 1 or None, got {patience}")
        if mode not in ("max", "min"):
            raise ValueError(f"early stopping mode must be 'max' or 'min', got {mode!r}")
        if min_delta < 0:
            raise ValueError(f"early stopping min_delta must be >= 0, got {min_delta}")
        self.patience = patience
        self.mode = mode
        self.min_delta = min_delta
        self.best_score: float | None = None
        self.best_epoch: int | None = None
        self.bad_epochs = 0

    def _beats(self, score: float) -> bool:
        if math.isnan(score):
            return False
        if self.best_score is None:
            return True
        if self.mode == "max":
            return score > self.best_score + self.min_delta
        return score < self.best_score - self.min_delta

    def update(self, epoch: int, score: float) -> bool:
        """Record one epoch's score; returns True when it is a new best."""
        score = float(score)
        if self._beats(score):
            self.best_score, self.best_epoch, self.bad_epochs = score, epoch, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        """True once ``patience`` consecutive epochs failed to improve."""
        return self.patience is not None and self.bad_epochs >= self.patience
