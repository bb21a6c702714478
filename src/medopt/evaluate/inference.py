"""The inference pass: a model's loss and probabilities over a loader, and the scores an epoch row records.

Why here: training (validation each epoch), federated clients, the compress fine-tuner and the evaluate stage all
run the same pass; it belongs to evaluation, which training then uses, so no stage imports training to predict.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from medopt.data.types import Task, check_task
from medopt.errors import MedoptError

EPOCH_METRICS: tuple[str, ...] = ("acc", "bacc", "auc")
"""The metrics every epoch row (local, Ray) and every federated client report carries."""


class MetricsError(MedoptError, ValueError):
    """A metrics mapping lacks the metrics an epoch row records and monitors."""


@dataclass(frozen=True)
class EvalOutput:
    """Mean loss plus labels and probabilities (softmax (N,C) or sigmoid (N,K)) of one evaluation pass."""

    loss: float
    y_true: np.ndarray
    y_prob: np.ndarray


def check_batch(logits: Tensor, y: Tensor, task: Task) -> None:
    """Raise a ValueError when logits and targets do not have the shapes and dtypes the task's loss needs."""
    if task == "multilabel":
        if logits.shape != y.shape:
            raise ValueError(f"multilabel: logits {tuple(logits.shape)} and targets {tuple(y.shape)} must match")
        return
    if logits.ndim != 2 or logits.shape[1] < 2:
        raise ValueError(f"{task}: the model must output (B, C>=2) logits for CrossEntropy, got {tuple(logits.shape)}")
    if y.dtype != torch.int64 or y.ndim != 1:
        raise ValueError(f"{task}: targets must be int64 (B,), got {y.dtype} {tuple(y.shape)}")


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
        check_batch(logits, y, task)
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


def epoch_scores(metrics: Mapping[str, Any], prefix: str = "val_",
                 keys: tuple[str, ...] = EPOCH_METRICS) -> dict[str, float]:
    """``{prefix + key: float}`` for the epoch metrics, from a full metric mapping (e.g. ``compute_metrics``).

    Raises:
        MetricsError: a key is missing.
    """
    missing = [k for k in keys if k not in metrics]
    if missing:
        raise MetricsError(f"metrics must include {list(keys)}; missing {missing}")
    return {f"{prefix}{k}": float(metrics[k]) for k in keys}
