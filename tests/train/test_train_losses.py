from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from medopt.config import TrainConfig
from medopt.train.losses import SmoothedBCEWithLogitsLoss, build_loss, count_classes

LN3 = math.log(3.0)  # logits [ln 3, 0] -> softmax [0.75, 0.25]; sigmoid(ln 3) = 0.75


def test_inverse_frequency_weights_have_mean_one() -> None:
    # 1/[10, 30, 60] = [0.1, 0.0333.., 0.01666..], mean 0.05 -> [2, 2/3, 1/3]
    loss = build_loss("multiclass", TrainConfig(class_weighting=True), np.array([10, 30, 60]))
    assert isinstance(loss, nn.CrossEntropyLoss)
    torch.testing.assert_close(loss.weight, torch.tensor([2.0, 2.0 / 3.0, 1.0 / 3.0]))
    assert loss.weight.mean().item() == pytest.approx(1.0)


def test_weighted_ce_value_matches_hand_computation() -> None:
    loss = build_loss("binary", TrainConfig(class_weighting=True), np.array([30, 10]))  # weights [0.5, 1.5]
    logits = torch.tensor([[LN3, 0.0], [LN3, 0.0]])
    # sample 0 (class 0): -ln .75 = 0.2876821, weight .5; sample 1 (class 1): -ln .25 = 1.3862944, weight 1.5
    expected = (0.5 * 0.2876821 + 1.5 * 1.3862944) / (0.5 + 1.5)
    assert loss(logits, torch.tensor([0, 1])).item() == pytest.approx(expected, abs=1e-6)


def test_no_weighting_by_default() -> None:
    loss = build_loss("multiclass", TrainConfig(), np.array([1, 99]))
    assert isinstance(loss, nn.CrossEntropyLoss) and loss.weight is None


def test_multilabel_pos_weight_is_neg_over_pos() -> None:
    counts = count_classes(np.array([[1, 0], [0, 1], [0, 0], [0, 1], [0, 0]]), "multilabel", 2)
    assert counts.tolist() == [[4, 3], [1, 2]]
    loss = build_loss("multilabel", TrainConfig(class_weighting=True), counts)
    torch.testing.assert_close(loss.pos_weight, torch.tensor([4.0, 1.5]))
    # pos_weight scales the positive term only: target 1, logit ln 3 -> 4 * -ln(0.75)
    got = loss(torch.tensor([[LN3, LN3]]), torch.tensor([[1.0, 0.0]]))
    assert got.item() == pytest.approx((4 * 0.2876821 + 1.3862944) / 2, abs=1e-6)


def test_ce_label_smoothing_changes_loss_by_hand_amount() -> None:
    logits, target = torch.tensor([[LN3, 0.0]]), torch.tensor([0])
    plain = build_loss("binary", TrainConfig(), None)(logits, target).item()
    smooth = build_loss("binary", TrainConfig(label_smoothing=0.2), None)(logits, target).item()
    assert plain == pytest.approx(0.2876821, abs=1e-6)  # -ln 0.75
    # target [0.9, 0.1]: 0.9 * 0.2876821 + 0.1 * 1.3862944 = 0.3975433, i.e. +0.1098612
    assert smooth == pytest.approx(0.3975433, abs=1e-6)
    assert smooth - plain == pytest.approx(0.1098612, abs=1e-6)


def test_bce_label_smoothing_on_targets() -> None:
    logits, target = torch.tensor([[LN3]]), torch.tensor([[1.0]])
    plain = build_loss("multilabel", TrainConfig(), None)(logits, target).item()
    smooth = build_loss("multilabel", TrainConfig(label_smoothing=0.2), None)(logits, target).item()
    assert plain == pytest.approx(0.2876821, abs=1e-6)
    assert smooth == pytest.approx(0.3975433, abs=1e-6)  # target 1 -> 0.9: same numbers as the CE example


def test_count_classes_binary() -> None:
    assert count_classes(np.array([0, 1, 1, 2]), "multiclass", 4).tolist() == [1, 2, 1, 0]
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        count_classes(np.array([0, 2]), "binary", 2)


def test_errors_are_specific() -> None:
    with pytest.raises(ValueError, match="task must be one of"):
        build_loss("regression", TrainConfig(), None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no class_counts"):
        build_loss("binary", TrainConfig(class_weighting=True), None)
    with pytest.raises(ValueError, match=r"class_counts.*>= 1 training sample"):
        build_loss("multiclass", TrainConfig(class_weighting=True), np.array([5, 0, 3]))
    with pytest.raises(ValueError, match=r"\(2, K\)"):
        build_loss("multilabel", TrainConfig(class_weighting=True), np.array([3, 4]))
    with pytest.raises(ValueError, match="label_smoothing"):
        SmoothedBCEWithLogitsLoss(smoothing=1.0)
