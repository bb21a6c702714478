"""Fine-tuning after pruning or for quantization-aware training, through the one trainer ``fit``.

Why: compression must not grow a second training loop; this module only derives the fine-tuning TrainConfig
(few epochs, small constant lr, selection on validation balanced accuracy) and plugs in the distillation loss.
"""

from __future__ import annotations

import copy
import logging
from functools import partial
from typing import Any

import numpy as np
from torch import nn

from medopt.compress.data import CompressData
from medopt.compress.distill import DistillationLoss
from medopt.config import CompressConfig, SchedulerConfig, TrainConfig
from medopt.evaluate.metrics import compute_metrics
from medopt.train.losses import build_loss, count_classes
from medopt.train.loop import FitResult, fit

logger = logging.getLogger(__name__)


def finetune_config(train: TrainConfig, cfg: CompressConfig, epochs: int) -> TrainConfig:
    """The training section for fine-tuning: ``epochs`` at ``cfg.finetune_lr``, no schedule, no early stop."""
    return train.model_copy(update={
        "epochs": epochs, "lr": cfg.finetune_lr, "early_stopping_patience": None,
        "scheduler": SchedulerConfig(kind="none"), "monitor": "val_bacc", "backend": "local",
    })


def _metrics(y_true: np.ndarray, y_prob: np.ndarray, task: str, names: tuple[str, ...]) -> dict[str, Any]:
    return compute_metrics(y_true, y_prob, task, names)


def finetune(
    model: nn.Module,
    data: CompressData,
    train: TrainConfig,
    cfg: CompressConfig,
    *,
    teacher: nn.Module | None = None,
    epochs: int | None = None,
) -> FitResult | None:
    """Fine-tune ``model`` in place on the train split (selecting on val); distil from ``teacher`` when given.

    Returns None (and leaves the model unchanged) when the epoch count is 0.
    """
    n = cfg.finetune_epochs if epochs is None else epochs
    if n < 1:
        return None
    tcfg = finetune_config(train, cfg, n)
    ds = data.dataset
    counts = count_classes(ds.train.labels, ds.task, ds.num_classes)
    loss_fn: nn.Module | None = None
    handle = None
    if teacher is not None:
        base = build_loss(ds.task, tcfg, counts)
        kd = DistillationLoss(copy.deepcopy(teacher), base, alpha=cfg.distill_alpha,
                              temperature=cfg.distill_temperature)
        handle, loss_fn = kd.attach(model), kd
    try:
        result = fit(model, data.loader("train", shuffle=True), data.loader("val", shuffle=False), tcfg,
                     task=ds.task, metrics_fn=partial(_metrics, names=ds.class_names), class_counts=counts,
                     loss_fn=loss_fn)
    finally:
        if handle is not None:
            handle.remove()
    model.cpu().eval()
    logger.info("fine-tuned %d epochs (distill=%s): best val_bacc %.4f at epoch %d", n, teacher is not None,
                result.best_score, result.best_epoch)
    return result
