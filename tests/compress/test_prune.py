from __future__ import annotations

import pytest
import torch
from compress_helpers import SIZE, tiny
from torch import nn

from medopt.compress.errors import CompressError
from medopt.compress.prune import count_params_macs, prune_structured, unstructured_prune
from medopt.config import CompressConfig


def _convs(model: nn.Module) -> list[nn.Conv2d]:
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)]


@pytest.mark.parametrize("scope", ["uniform", "global"])
def test_structured_pruning_shrinks_and_keeps_interface(scope: str) -> None:
    model = tiny("tiny_resnet")
    x = torch.randn(2, 1, SIZE, SIZE)
    cfg = CompressConfig(prune_scope=scope, prune_steps=2, round_to=8)
    calls: list[int] = []
    report = prune_structured(model, x, cfg, ratio=0.5, after_step=lambda m, step: calls.append(step))
    assert calls == [0, 1] and len(report.steps) == 2
    assert report.params_after < report.params_before and report.macs_after < report.macs_before
    assert (report.params_after, report.macs_after) == count_params_macs(model, x)
    assert model(x).shape == (2, 2)
    assert model.get_classifier().out_features == 2
    assert all(c.out_channels % 8 == 0 for c in _convs(model))


def test_uniform_half_ratio_halves_hidden_widths() -> None:
    model = tiny("tiny_cnn")  # widths 8, 16, 32, 64 -> 8 (round_to floor), 8, 16, 32
    prune_structured(model, torch.randn(2, 1, SIZE, SIZE), CompressConfig(prune_steps=1, round_to=8), ratio=0.5)
    assert [c.out_channels for c in _convs(model)] == [8, 8, 16, 32]
    assert model.get_classifier().in_features == 32


def test_layers_too_narrow_for_one_round_to_unit_are_left_whole() -> None:
    model = tiny("tiny_cnn")  # 25% of 16 channels is 4, less than one unit of 8: rounding would remove 50%
    prune_structured(model, torch.randn(2, 1, SIZE, SIZE), CompressConfig(prune_steps=1, round_to=8), ratio=0.25)
    assert [c.out_channels for c in _convs(model)] == [8, 16, 24, 48]


def test_taylor_needs_and_uses_gradients() -> None:
    cfg = CompressConfig(prune_importance="taylor", prune_steps=1)
    x = torch.randn(4, 1, SIZE, SIZE)
    with pytest.raises(CompressError, match="grad_batch"):
        prune_structured(tiny("tiny_cnn"), x, cfg, ratio=0.3)
    model = tiny("tiny_cnn")
    report = prune_structured(model, x, cfg, ratio=0.3, grad_batch=(x, torch.tensor([0, 1, 0, 1])))
    assert report.params_after < report.params_before
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.1])
def test_bad_ratio_raises(ratio: float) -> None:
    with pytest.raises(CompressError, match="ratio"):
        prune_structured(tiny("tiny_cnn"), torch.randn(2, 1, SIZE, SIZE), CompressConfig(), ratio=ratio)


def test_unstructured_sparsity_is_exact_and_permanent() -> None:
    model = tiny("tiny_resnet")
    keys = set(model.state_dict())
    head_before = model.get_classifier().weight.detach().clone()
    sparsity = unstructured_prune(model, 0.5)
    weights = [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)) and m is not
               model.get_classifier()]
    total = sum(w.numel() for w in weights)
    zeros = sum(int((w == 0).sum()) for w in weights)
    assert zeros == round(0.5 * total) and sparsity == pytest.approx(zeros / total)
    assert set(model.state_dict()) == keys  # no weight_orig / weight_mask left behind
    assert all(not m._forward_pre_hooks for m in model.modules())
    assert torch.equal(model.get_classifier().weight, head_before)
