"""Repairing a pruned network: BatchNorm re-estimation, then fine-tuning through the one trainer ``fit``.

Why: compression must not grow a second training loop; this module only derives the fine-tuning TrainConfig
(few epochs, small constant lr, selection on validation balanced accuracy) and plugs in the distillation loss.
Removing channels shifts every later layer's activations, so the BatchNorm statistics of the unpruned network no
longer describe them; re-estimating them on training images costs a few forward passes and repairs much of the
damage before any gradient step (Li et al., EagleEye, 2020: "adaptive BatchNorm").
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import nn

from medopt.compress.split_inputs import CompressData
from medopt.compress.distill import DistillationLoss
from medopt.compress.measure import split_bacc, torch_predictor
from medopt.config import CompressConfig, SchedulerConfig, TrainConfig
from medopt.evaluate.metrics import compute_metrics
from medopt.models.bn_recalibration import recalibrate_batchnorm
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


def recalibrate_pruned(model: nn.Module, data: CompressData, samples: int, chunk: int = 32) -> int:
    """Re-estimate every BatchNorm's statistics on ``samples`` seeded training images; returns the images used."""
    if samples < 1:
        return 0
    images = data.calibration(samples)

    def batches() -> Iterator[tuple[torch.Tensor, None]]:
        for start in range(0, images.shape[0], chunk):
            yield images[start:start + chunk], None

    recalibrate_batchnorm(model, batches(), torch.device("cpu"), include_frozen=True)
    return int(images.shape[0])


def finetune(
    model: nn.Module,
    data: CompressData,
    train: TrainConfig,
    cfg: CompressConfig,
    *,
    teacher: nn.Module | None = None,
    epochs: int | None = None,
    keep_if_worse: bool = False,
) -> FitResult | None:
    """Fine-tune ``model`` in place on the train split (selecting on val); distil from ``teacher`` when given.

    Unless ``keep_if_worse``, the weights it started from win when no epoch beats their validation balanced
    accuracy: a pruned ResNet-50 ended a fine-tuning epoch 9 points below a more heavily pruned one, and the
    compressor must not pay for an epoch that made things worse. Returns None (and leaves the model unchanged)
    when the epoch count is 0.
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
    start = None if keep_if_worse else (split_bacc(torch_predictor(model), data),
                                         copy.deepcopy(model.state_dict()))
    try:
        result = fit(model, data.loader("train", shuffle=True), data.loader("val", shuffle=False), tcfg,
                     task=ds.task, metrics_fn=partial(_metrics, names=ds.class_names), class_counts=counts,
                     loss_fn=loss_fn)
    finally:
        if handle is not None:
            handle.remove()
    model.cpu().eval()
    if start is not None and result.best_score < start[0]:
        model.load_state_dict(start[1])
        logger.info("fine-tuning ended at val_bacc %.4f, below the %.4f it started from: kept the starting weights",
                    result.best_score, start[0])
    logger.info("fine-tuned %d epochs (distill=%s): best val_bacc %.4f at epoch %d", n, teacher is not None,
                result.best_score, result.best_epoch)
    return result
