from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from medopt.config import SchedulerConfig, TrainConfig
from medopt.registry import UnknownNameError
from medopt.train.adaptive import AdaptiveMomentumLR
from medopt.train.optim import OPTIMIZER_DEFAULTS, OPTIMIZERS, build_optimizer, build_scheduler

EXPECTED = {  # name: (class, lr, weight_decay, betas)
    "sgd": (torch.optim.SGD, 0.01, 5e-4, None),
    "adam": (torch.optim.Adam, 1e-3, 0.02, (0.9, 0.98)),
    "adamw": (torch.optim.AdamW, 1e-3, 0.02, (0.9, 0.98)),
    "adagrad": (torch.optim.Adagrad, 1e-3, 5e-4, None),
    "adadelta": (torch.optim.Adadelta, 1e-3, 5e-4, None),
    "adaptive": (AdaptiveMomentumLR, 1e-2, 0.0, None),
}


def _params() -> list[nn.Parameter]:
    return list(nn.Linear(3, 2).parameters())


def test_defaults_table_is_exact() -> None:
    assert set(OPTIMIZER_DEFAULTS) == set(EXPECTED) == set(OPTIMIZERS.names())
    for name, (_, lr, wd, betas) in EXPECTED.items():
        d = OPTIMIZER_DEFAULTS[name]
        assert (d.lr, d.weight_decay, d.betas) == (lr, wd, betas), name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_build_optimizer_uses_defaults(name: str) -> None:
    cls, lr, wd, betas = EXPECTED[name]
    opt = build_optimizer(_params(), TrainConfig(optimizer=name))
    group = opt.param_groups[0]
    assert type(opt) is cls
    assert group["lr"] == lr and group["weight_decay"] == wd
    if betas is not None:
        assert tuple(group["betas"]) == betas
    else:
        assert "betas" not in group


def test_sgd_momentum_and_adaptive_rule_come_from_config() -> None:
    assert build_optimizer(_params(), TrainConfig(optimizer="sgd")).param_groups[0]["momentum"] == 0.9
    assert build_optimizer(_params(), TrainConfig(optimizer="sgd", momentum=0.5)).param_groups[0]["momentum"] == 0.5
    group = build_optimizer(_params(), TrainConfig(optimizer="adaptive", adaptive_alpha=0.3, adaptive_gamma=2.0))
    assert (group.param_groups[0]["alpha"], group.param_groups[0]["gamma"]) == (0.3, 2.0)


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_overrides_win(name: str) -> None:
    cfg = TrainConfig(optimizer=name, lr=0.5, weight_decay=0.125, betas=(0.8, 0.9))
    group = build_optimizer(_params(), cfg).param_groups[0]
    assert group["lr"] == 0.5 and group["weight_decay"] == 0.125
    if name != "sgd":
        assert tuple(group["betas"]) == (0.8, 0.9)


def test_zero_weight_decay_override_is_not_ignored() -> None:
    group = build_optimizer(_params(), TrainConfig(optimizer="adam", weight_decay=0.0)).param_groups[0]
    assert group["weight_decay"] == 0.0


def test_unknown_optimizer_lists_valid_names() -> None:
    cfg = TrainConfig().model_copy(update={"optimizer": "adamm"})
    with pytest.raises(UnknownNameError, match="adamm.*Did you mean adam.*Valid: adadelta, adagrad"):
        build_optimizer(_params(), cfg)


def test_only_trainable_params() -> None:
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2))
    model[0].requires_grad_(False)
    opt = build_optimizer(model.parameters(), TrainConfig())
    assert [id(p) for p in opt.param_groups[0]["params"]] == [id(p) for p in model[1].parameters()]
    model.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        build_optimizer(model.parameters(), TrainConfig())


def _lrs_over(cfg: TrainConfig, epochs: int, steps: int) -> list[float]:
    opt = build_optimizer(_params(), cfg)
    sched = build_scheduler(opt, cfg, steps)
    out = []
    for epoch in range(epochs):
        for i in range(steps):
            sched.step(epoch + i / steps)
            out.append(opt.param_groups[0]["lr"])
    return out


def test_warm_restarts_return_to_base_after_t0_epochs() -> None:
    cfg = TrainConfig(optimizer="sgd", lr=0.1, scheduler=SchedulerConfig(t0=2, eta_min=0.01))
    lrs = _lrs_over(cfg, epochs=5, steps=4)
    assert lrs[0] == pytest.approx(0.1)
    # halfway through the first cycle (epoch 1.0): eta_min + (base - eta_min) * (1 + cos(pi/2)) / 2
    assert lrs[4] == pytest.approx(0.055)
    assert lrs[7] == pytest.approx(0.01 + 0.09 * (1 + math.cos(math.pi * 1.75 / 2)) / 2)
    assert all(a > b for a, b in zip(lrs[:7], lrs[1:8]))  # decays within the cycle
    assert lrs[8] == pytest.approx(0.1) and lrs[16] == pytest.approx(0.1)  # restarts at epochs 2 and 4
    assert lrs[8:16] == pytest.approx(lrs[0:8])


def test_warm_restarts_t_mult_doubles_cycle() -> None:
    cfg = TrainConfig(optimizer="sgd", lr=0.1, scheduler=SchedulerConfig(t0=1, t_mult=2))
    lrs = _lrs_over(cfg, epochs=4, steps=2)
    assert [lrs[0], lrs[2], lrs[6]] == pytest.approx([0.1, 0.1, 0.1])  # restarts at epochs 0, 1, 3
    assert lrs[4] == pytest.approx(0.05)  # epoch 2 is halfway through the 2-epoch cycle


def test_scheduler_none_and_bad_steps() -> None:
    opt = build_optimizer(_params(), TrainConfig())
    assert build_scheduler(opt, TrainConfig(scheduler=SchedulerConfig(kind="none")), 3) is None
    with pytest.raises(ValueError, match="steps_per_epoch"):
        build_scheduler(opt, TrainConfig(), 0)
