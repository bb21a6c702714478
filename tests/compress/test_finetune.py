"""Repairing a pruned network: BatchNorm re-estimation, and fine-tuning that never ends below its start."""

from __future__ import annotations

import torch
from torch import nn

from medopt.compress.split_inputs import CompressData
from medopt.compress.finetune import finetune, recalibrate_pruned
from medopt.config import CompressConfig, TrainConfig
from compress_helpers import tiny


def _bn_inputs(model: nn.Module, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """The per-channel mean of every BatchNorm's input over ``images`` (eval mode)."""
    means: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda mod, inp, out, n=n: means.__setitem__(n, inp[0].mean(dim=(0, 2, 3))))
             for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        model.eval()(images)
    for h in hooks:
        h.remove()
    return means


def test_recalibration_replaces_stale_statistics_with_those_of_training_images(data: CompressData) -> None:
    model = tiny("tiny_resnet")
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns
    for bn in bns:  # stale statistics, as after pruning; one layer frozen, as in feature extraction
        bn.running_mean.fill_(100.0)
    for p in bns[0].parameters():
        p.requires_grad_(False)
    used = recalibrate_pruned(model, data, samples=48, chunk=16)
    assert used == 48 and not model.training
    # the first BatchNorm's input does not depend on any statistics: its mean is exactly known
    expected = _bn_inputs(model, data.calibration(48))
    first = next(n for n, m in model.named_modules() if m is bns[0])
    assert torch.allclose(bns[0].running_mean, expected[first], atol=1e-4)
    assert all(bn.running_mean.abs().max() < 50 for bn in bns)
    assert all(bn.momentum == 0.1 for bn in bns)  # the training momentum is restored


def test_zero_samples_leaves_the_statistics_alone(data: CompressData) -> None:
    model = tiny("tiny_resnet")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert recalibrate_pruned(model, data, samples=0) == 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def _scrambling_fit(score: float):  # noqa: ANN202
    """A stand-in for ``fit`` that moves every weight and reports ``score`` as its best validation score."""
    from medopt.train.loop import FitResult

    def fake(model: nn.Module, *_args, **_kwargs) -> FitResult:
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0)
        return FitResult(best_epoch=0, best_score=score, epochs_run=1, stopped_early=False, history={}, _state={},
                         monitor="val_bacc")

    return fake


def test_finetuning_that_only_hurts_keeps_the_starting_weights(monkeypatch, trained: nn.Module, data: CompressData,
                                                               train_cfg: TrainConfig) -> None:
    monkeypatch.setattr("medopt.compress.finetune.fit", _scrambling_fit(-1.0))  # below any starting score
    before = {k: v.clone() for k, v in trained.state_dict().items()}
    result = finetune(trained, data, train_cfg, CompressConfig(), epochs=1)
    assert result is not None and result.best_score == -1.0
    assert all(torch.equal(before[k], v) for k, v in trained.state_dict().items())


def test_finetuning_that_helps_or_keep_if_worse_keeps_the_new_weights(monkeypatch, trained: nn.Module,
                                                                     data: CompressData,
                                                                     train_cfg: TrainConfig) -> None:
    for score, keep in ((2.0, False), (-1.0, True)):
        monkeypatch.setattr("medopt.compress.finetune.fit", _scrambling_fit(score))
        before = {k: v.clone() for k, v in trained.state_dict().items()}
        finetune(trained, data, train_cfg, CompressConfig(), epochs=1, keep_if_worse=keep)
        assert not any(torch.equal(before[k], v) for k, v in trained.named_parameters()), (score, keep)
