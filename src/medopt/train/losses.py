"""Loss functions per task, with optional class re-weighting and label smoothing."""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medopt.config import TrainConfig
from medopt.data.types import Task, check_task

logger = logging.getLogger(__name__)

def count_classes(labels: np.ndarray, task: Task, num_classes: int) -> np.ndarray:
    """Training-label counts in the shape ``build_loss`` expects.

    Returns:
        binary/multiclass: (num_classes,) samples per class.
        multilabel: (2, num_classes): row 0 negatives, row 1 positives per label.
    """
    check_task(task)
    y = np.asarray(labels)
    if task == "multilabel":
        if y.ndim != 2 or y.shape[1] != num_classes:
            raise ValueError(f"count_classes: multilabel labels must be (N,{num_classes}), got {y.shape}")
        pos = (y > 0.5).sum(axis=0)
        return np.stack([len(y) - pos, pos]).astype(np.int64)
    if y.ndim != 1:
        raise ValueError(f"count_classes: {task} labels must be (N,), got {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"count_classes: labels must lie in [0, {num_classes}), got [{y.min()}, {y.max()}]")
    return np.bincount(y.astype(np.int64), minlength=num_classes)


def inverse_frequency_weights(counts: np.ndarray) -> np.ndarray:
    """w_k = (1 / n_k) / mean_j(1 / n_j): rare classes weigh more, and the mean weight is 1 so the loss scale stays."""
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 1 or c.size < 2:
        raise ValueError(f"class_counts must be a 1-D array with one count per class (>= 2), got shape {c.shape}")
    if np.any(c <= 0):
        raise ValueError(f"class_counts: every class needs >= 1 training sample to be weighted, got {c.tolist()}")
    inv = 1.0 / c
    return inv / inv.mean()


def evaluation_loss(task: Task, cfg: TrainConfig) -> nn.Module:
    """The loss reported on held-out data: unweighted, so scores stay comparable across runs and clients.

    Class weighting is a training choice made from training counts; a client's or the server's held-out split
    has no business being scored with it.
    """
    return build_loss(task, cfg.model_copy(update={"class_weighting": False}), None)


def positive_weights(counts: np.ndarray) -> np.ndarray:
    """Per-label pos_weight = negatives / positives, from (2, K) counts [negatives; positives]."""
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] != 2:
        raise ValueError(
            f"multilabel class_counts must be (2, K) = [negatives; positives] per label (see count_classes), "
            f"got shape {c.shape}"
        )
    neg, pos = c
    if np.any(pos <= 0) or np.any(neg <= 0):
        raise ValueError(
            f"multilabel class_counts: every label needs >= 1 positive and >= 1 negative to be weighted, "
            f"got negatives {neg.tolist()} positives {pos.tolist()}"
        )
    return neg / pos


class SmoothedBCEWithLogitsLoss(nn.Module):
    """BCE-with-logits on smoothed targets y * (1 - s) + s / 2, with an optional per-label pos_weight."""

    def __init__(self, smoothing: float = 0.0, pos_weight: torch.Tensor | None = None) -> None:
        super().__init__()
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {smoothing}")
        self.smoothing = float(smoothing)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = target.to(logits.dtype)
        if self.smoothing:
            target = target * (1.0 - self.smoothing) + self.smoothing / 2.0
        return F.binary_cross_entropy_with_logits(logits, target, pos_weight=self.pos_weight)


def build_loss(task: Task, cfg: TrainConfig, class_counts: np.ndarray | None) -> nn.Module:
    """CrossEntropy (binary/multiclass) or smoothed BCE-with-logits (multilabel) as configured.

    Args:
        task: binary, multiclass or multilabel.
        cfg: train.label_smoothing and train.class_weighting are used.
        class_counts: training counts from ``count_classes``; required when class_weighting is on.

    Raises:
        ValueError: unknown task, or class_weighting without usable class_counts.
    """
    check_task(task)
    if cfg.class_weighting and class_counts is None:
        raise ValueError("train.class_weighting is on but no class_counts were given")
    if task == "multilabel":
        pos_weight = None
        if cfg.class_weighting:
            pos_weight = torch.as_tensor(positive_weights(class_counts), dtype=torch.float32)
            logger.info("multilabel pos_weight %s", pos_weight.tolist())
        return SmoothedBCEWithLogitsLoss(cfg.label_smoothing, pos_weight)
    weight = None
    if cfg.class_weighting:
        weight = torch.as_tensor(inverse_frequency_weights(class_counts), dtype=torch.float32)
        logger.info("class weights %s", weight.tolist())
    return nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.label_smoothing)
