"""Optimizers by name with the house defaults, and the per-batch cosine warm-restart schedule."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingWarmRestarts, LRScheduler

from medopt.config import TrainConfig
from medopt.registry import Registry
from medopt.train.adaptive import AdaptiveMomentumLR

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OptimizerDefaults:
    """House defaults for one optimizer; ``betas`` is None where the optimizer has none."""

    lr: float
    weight_decay: float
    betas: tuple[float, float] | None = None


@dataclass(frozen=True)
class Hyper:
    """The resolved hyper-parameters handed to an optimizer builder (config overrides applied)."""

    lr: float
    weight_decay: float
    betas: tuple[float, float] | None


OPTIMIZER_DEFAULTS: Mapping[str, OptimizerDefaults] = MappingProxyType(
    {
        "sgd": OptimizerDefaults(lr=0.01, weight_decay=5e-4),
        "adam": OptimizerDefaults(lr=1e-3, weight_decay=0.02, betas=(0.9, 0.98)),
        "adamw": OptimizerDefaults(lr=1e-3, weight_decay=0.02, betas=(0.9, 0.98)),
        "adagrad": OptimizerDefaults(lr=1e-3, weight_decay=5e-4),
        "adadelta": OptimizerDefaults(lr=1e-3, weight_decay=5e-4),
        "adaptive": OptimizerDefaults(lr=1e-2, weight_decay=0.0),
    }
)

OptimizerBuilder = Callable[[list[torch.nn.Parameter], Hyper, TrainConfig], Optimizer]
OPTIMIZERS: Registry[OptimizerBuilder] = Registry("optimizer")


@OPTIMIZERS.register("sgd")
def _sgd(params: list[torch.nn.Parameter], hp: Hyper, cfg: TrainConfig) -> Optimizer:
    return torch.optim.SGD(params, lr=hp.lr, momentum=cfg.momentum, weight_decay=hp.weight_decay)


@OPTIMIZERS.register("adam")
def _adam(params: list[torch.nn.Parameter], hp: Hyper, cfg: TrainConfig) -> Optimizer:
    return torch.optim.Adam(params, lr=hp.lr, betas=hp.betas, weight_decay=hp.weight_decay)


@OPTIMIZERS.register("adamw")
def _adamw(params: list[torch.nn.Parameter], hp: Hyper, cfg: TrainConfig) -> Optimizer:
    return torch.optim.AdamW(params, lr=hp.lr, betas=hp.betas, weight_decay=hp.weight_decay)


@OPTIMIZERS.register("adagrad")
def _adagrad(params: list[torch.nn.Parameter], hp: Hyper, cfg: TrainConfig) -> Optimizer:
    return torch.optim.Adagrad(params, lr=hp.lr, weight_decay=hp.weight_decay)


@OPTIMIZERS.register("adadelta")
def _adadelta(params: list[torch.nn.Parameter], hp: Hyper, cfg: TrainConfig) -> Optimizer:
    return torch.optim.Adadelta(params, lr=hp.lr, weight_decay=hp.weight_decay)


@OPTIMIZERS.register("adaptive")
def _adaptive(params: list[torch.nn.Parameter], hp: Hyper, cfg: TrainConfig) -> Optimizer:
    return AdaptiveMomentumLR(
        params, lr=hp.lr, alpha=cfg.adaptive_alpha, gamma=cfg.adaptive_gamma, weight_decay=hp.weight_decay
    )


def resolve_hyper(cfg: TrainConfig) -> Hyper:
    """Merge train.lr / train.weight_decay / train.betas over the optimizer's house defaults.

    Raises:
        UnknownNameError: train.optimizer is not a registered optimizer (lists the valid names).
    """
    OPTIMIZERS.get(cfg.optimizer)  # an unknown name fails here, listing the valid ones
    base = OPTIMIZER_DEFAULTS[cfg.optimizer]
    if cfg.betas is not None and base.betas is None:
        logger.warning("train.betas is ignored: optimizer '%s' has no betas", cfg.optimizer)
    betas = base.betas if base.betas is None or cfg.betas is None else tuple(cfg.betas)
    return Hyper(
        lr=base.lr if cfg.lr is None else cfg.lr,
        weight_decay=base.weight_decay if cfg.weight_decay is None else cfg.weight_decay,
        betas=betas,  # type: ignore[arg-type]
    )


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: TrainConfig) -> Optimizer:
    """Build train.optimizer over the trainable (``requires_grad``) parameters only.

    Why only trainable ones: with frozen backbones (transfer 'feature_extract'/'last_n') weight decay would
    otherwise still shrink the frozen weights.

    Raises:
        UnknownNameError: unknown train.optimizer.
        ValueError: no parameter requires a gradient.
    """
    builder = OPTIMIZERS.get(cfg.optimizer)
    hp = resolve_hyper(cfg)
    trainable = [p for p in params if p.requires_grad]
    if not trainable:
        raise ValueError("build_optimizer: the model has no trainable parameters (all requires_grad=False)")
    logger.info("optimizer %s lr=%g weight_decay=%g betas=%s", cfg.optimizer, hp.lr, hp.weight_decay, hp.betas)
    return builder(trainable, hp, cfg)


def build_scheduler(optimizer: Optimizer, cfg: TrainConfig, steps_per_epoch: int) -> LRScheduler | None:
    """Cosine annealing with warm restarts over epochs, or None for train.scheduler.kind 'none'.

    The scheduler is meant to be stepped after every batch with a fractional epoch,
    ``sched.step(epoch + (i + 1) / steps_per_epoch)`` (``train_one_epoch`` does this), so the rate decays smoothly
    within an epoch and returns to its base value after exactly ``t0`` epochs.

    Raises:
        ValueError: ``steps_per_epoch`` is not a positive int (an empty loader cannot be scheduled).
    """
    if not isinstance(steps_per_epoch, int) or steps_per_epoch < 1:
        raise ValueError(f"build_scheduler: steps_per_epoch must be a positive int, got {steps_per_epoch!r}")
    sc = cfg.scheduler
    if sc.kind == "none":
        return None
    if sc.kind == "cosine_warm_restarts":
        return CosineAnnealingWarmRestarts(optimizer, T_0=sc.t0, T_mult=sc.t_mult, eta_min=sc.eta_min)
    raise ValueError(f"train.scheduler.kind: unknown scheduler {sc.kind!r} (valid: none, cosine_warm_restarts)")
