"""Client-side work of one hospital per round: local training (FedAvg/FedProx, optional DP clipping) and evaluation.

Plain functions over a ``ClientData``, built on medopt's own epoch function (``train_one_epoch``), inference pass
(``evaluate_epoch``), seed rule (``round_seed``) and optimizers; ``flower_client`` wraps them as Flower's ClientApp.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import nn

from medopt.config import ExperimentConfig, config_from_json
from medopt.data import make_loader
from medopt.data.types import ArraySplit
from medopt.evaluate.inference import epoch_scores, evaluate_epoch
from medopt.evaluate.metrics import compute_metrics
from medopt.federate.aggregate import uses_equal_weights
from medopt.federate.arrays import NDArrays, get_weights, set_weights
from medopt.federate.bn_stats import pack_stats, stat_pairs
from medopt.federate.partitions import ClientData
from medopt.federate.privacy import clip_update, global_norm
from medopt.federate.proximal import ProximalLoss, snapshot_trainable
from medopt.models.bn_recalibration import recalibrate_batchnorm
from medopt.models.geometry import ModelGeometry, build_model
from medopt.train.loop import train_one_epoch
from medopt.train.losses import build_loss, count_classes, evaluation_loss
from medopt.train.optim import build_optimizer, build_scheduler
from medopt.train.seeding import reseed_globals, resolve_device, round_seed

logger = logging.getLogger(__name__)
CONFIG_KEY = "experiment"
ROUND_KEY = "server_round"
STATS_KEY = "bn_stats"
COUNT_KEY = "bn_count"


@dataclass(frozen=True)
class FitOutput:
    """A client's reply to one training instruction: weights, aggregation weight and scalar metrics only."""

    weights: NDArrays
    weight: int
    metrics: dict[str, float]


@lru_cache(maxsize=4)
def parse_config(text: str) -> ExperimentConfig:
    """Re-validate the serialized ExperimentConfig sent by the server (cached: it is identical every round)."""
    return config_from_json(text)


def build_client_model(cfg: ExperimentConfig, geometry: ModelGeometry) -> nn.Module:
    """The configured architecture; weights come from the server, so no pretrained file is read here."""
    return build_model(cfg.model.model_copy(update={"pretrained": False, "weights_path": None}), geometry)


def _loader(split: ArraySplit, cfg: ExperimentConfig, geometry: ModelGeometry, *, train: bool, seed: int) -> Any:
    bs = cfg.train.batch_size if train else max(cfg.train.batch_size, 256)
    return make_loader(split, cfg.data.preprocess, batch_size=bs, shuffle=train, seed=seed, task=geometry.task)


def _scores(model: nn.Module, split: ArraySplit, loss_fn: nn.Module, cfg: ExperimentConfig, geometry: ModelGeometry,
            device: torch.device, prefix: str = "") -> dict[str, float]:
    loader = _loader(split, cfg, geometry, train=False, seed=0)
    out = evaluate_epoch(model, loader, loss_fn, device=device, task=geometry.task)
    metrics = compute_metrics(out.y_true, out.y_prob, geometry.task, geometry.class_names)
    return {f"{prefix}loss": out.loss, **epoch_scores(metrics, prefix=prefix)}


def _local_training(model: nn.Module, data: ClientData, cfg: ExperimentConfig, geometry: ModelGeometry,
                    server_round: int, device: torch.device, seed: int) -> float:
    """Run ``federate.local_epochs`` epochs, shuffling with ``seed``; returns the last epoch's mean training loss."""
    loader = _loader(data.train, cfg, geometry, train=True, seed=seed)
    # a label-skewed hospital may lack a class: it has no targets to weigh, so count it once to keep weights finite
    counts = np.maximum(count_classes(data.train.labels, geometry.task, geometry.num_classes), 1)
    base = build_loss(geometry.task, cfg.train, counts if cfg.train.class_weighting else None).to(device)
    loss_fn: nn.Module = base
    if cfg.federate.strategy == "fedprox":
        loss_fn = ProximalLoss(base, model, snapshot_trainable(model), cfg.federate.proximal_mu)
    optimizer = build_optimizer(model.parameters(), cfg.train)
    scheduler = build_scheduler(optimizer, cfg.train, len(loader))
    first = (server_round - 1) * cfg.federate.local_epochs  # the schedule continues across rounds
    loss = math.nan
    for epoch in range(first, first + cfg.federate.local_epochs):
        loss = train_one_epoch(model, loader, loss_fn, optimizer, scheduler=scheduler, epoch=epoch, device=device,
                               grad_clip=cfg.train.grad_clip)["loss"]
    return loss


def fit_client(cfg: ExperimentConfig, geometry: ModelGeometry, data: ClientData, weights: NDArrays,
               server_round: int) -> FitOutput:
    """Train the global ``weights`` locally and return the new weights (clipped to the DP bound when DP is on)."""
    start = time.perf_counter()
    seed = round_seed(cfg.train.seed, server_round, data.client_id)
    reseed_globals(seed)
    device = resolve_device(cfg.train.device)
    model = build_client_model(cfg, geometry)
    set_weights(model, weights)
    model.to(device)
    train_loss = _local_training(model, data, cfg, geometry, server_round, device, seed)
    recalibrate_batchnorm(model, _loader(data.train, cfg, geometry, train=False, seed=0), device)
    new = get_weights(model.cpu())
    if cfg.federate.dp.enabled:
        new, norm = clip_update(new, weights, cfg.federate.dp.clip_norm)
    else:
        norm = global_norm([n - w for n, w in zip(new, weights)])
    metrics = {"client": float(data.client_id), "num_examples": float(len(data.train)), "train_loss": train_loss,
               "update_norm": norm, "train_seconds": time.perf_counter() - start}
    if len(data.val):
        set_weights(model, new)
        metrics.update(_scores(model.to(device), data.val, evaluation_loss(geometry.task, cfg.train).to(device), cfg,
                               geometry, device, prefix="val_"))
    weight = 1 if uses_equal_weights(cfg.federate) else len(data.train)
    return FitOutput(new, weight, metrics)


def shares_statistics(cfg: ExperimentConfig) -> bool:
    """Whether clients report the global model's BatchNorm statistics on their data in the evaluate phase.

    Not under DP or SecAgg+: those statistics would reach the server unnoised and unmasked.
    """
    return not (cfg.federate.dp.enabled or cfg.federate.secagg)


def evaluate_client(cfg: ExperimentConfig, geometry: ModelGeometry, data: ClientData,
                    weights: NDArrays) -> tuple[float, int, dict[str, Any]]:
    """(loss, n, metrics) of the global ``weights`` on this client's own test split.

    The BatchNorm statistics are first re-estimated for ``weights`` on the local training data; unless DP or
    SecAgg+ is on, they go back to the server as ``metrics["bn_stats"]`` (bytes) with ``metrics["bn_count"]``.
    """
    device = resolve_device(cfg.train.device)
    model = build_client_model(cfg, geometry)
    set_weights(model, weights)
    model.to(device)
    pairs = stat_pairs(model)
    recalibrate_batchnorm(model, _loader(data.train, cfg, geometry, train=False, seed=0), device)
    loss_fn = evaluation_loss(geometry.task, cfg.train).to(device)
    scores = _scores(model, data.test, loss_fn, cfg, geometry, device)
    metrics: dict[str, Any] = {"client": float(data.client_id), **scores}
    if pairs and shares_statistics(cfg):
        metrics.update({STATS_KEY: pack_stats(get_weights(model.cpu()), pairs), COUNT_KEY: float(len(data.train))})
    return metrics.pop("loss"), len(data.test), metrics
