from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from compress_helpers import SIZE, tiny
from torch import nn

from medopt.compress.distill import DistillationLoss, kd_loss
from medopt.compress.errors import CompressError


def _hand_kl(s: torch.Tensor, t: torch.Tensor, temp: float) -> float:
    ps, pt = F.softmax(s / temp, 1).double(), F.softmax(t / temp, 1).double()
    return float((pt * (pt.log() - ps.log())).sum(1).mean())


def test_kd_loss_matches_hand_computation() -> None:
    torch.manual_seed(0)
    s, t, y = torch.randn(6, 3), torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    ce = nn.CrossEntropyLoss()
    got = kd_loss(s, t, y, alpha=0.3, temperature=4.0, base_loss=ce)
    expected = 0.3 * 16.0 * _hand_kl(s, t, 4.0) + 0.7 * float(F.cross_entropy(s, y))
    assert float(got) == pytest.approx(expected, rel=1e-5)
    assert float(kd_loss(s, s, y, alpha=1.0, temperature=2.0, base_loss=ce)) == pytest.approx(0.0, abs=1e-6)
    assert math.isclose(float(kd_loss(s, t, y, alpha=0.0, temperature=2.0, base_loss=ce)),
                        float(F.cross_entropy(s, y)), rel_tol=1e-6)


def test_distillation_loss_uses_the_students_input() -> None:
    student, teacher = tiny("tiny_cnn"), tiny("tiny_resnet")
    loss = DistillationLoss(teacher, nn.CrossEntropyLoss(), alpha=0.5, temperature=2.0)
    with pytest.raises(CompressError, match="attach"):
        loss(torch.randn(2, 2), torch.tensor([0, 1]))
    handle = loss.attach(student)
    x, y = torch.randn(3, 1, SIZE, SIZE), torch.tensor([0, 1, 1])
    with torch.no_grad():
        logits = student(x)
        expected = kd_loss(logits, teacher(x), y, alpha=0.5, temperature=2.0, base_loss=nn.CrossEntropyLoss())
        assert float(loss(logits, y)) == pytest.approx(float(expected), rel=1e-6)
    loss.train()
    assert not loss.teacher.training
    handle.remove()
    assert not student._forward_pre_hooks


def test_bad_kd_arguments_raise() -> None:
    with pytest.raises(CompressError, match="alpha"):
        kd_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.tensor([0]), alpha=2.0, temperature=1.0,
                base_loss=nn.CrossEntropyLoss())
