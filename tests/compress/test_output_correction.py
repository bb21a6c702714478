"""Int8 output bias correction: the measured mean logit shift is cancelled by one Add in the ONNX graph."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from medopt.compress.split_inputs import CompressData
from medopt.compress.errors import CompressError
from medopt.compress.export import export_onnx
from medopt.compress.measure import onnx_predictor, split_bacc, torch_predictor
from medopt.compress.output_correction import add_output_offset, correct_output_bias, output_offset
from medopt.compress.recipes import RECIPES, RecipeContext
from medopt.config import CompressConfig, TrainConfig
from compress_helpers import tiny


def _shifted_pair(tmp_path, data: CompressData, shift: tuple[float, float]):  # noqa: ANN202
    """(reference file, a file whose logits are the reference's plus ``shift``) from one tiny model."""
    model = tiny("tiny_cnn")
    ref = export_onnx(model, tmp_path / "ref.onnx", input_shape=data.input_shape, opset=17)
    with torch.no_grad():
        model.get_classifier().bias.add_(torch.tensor(shift))
    moved = export_onnx(model, tmp_path / "moved.onnx", input_shape=data.input_shape, opset=17)
    return ref, moved


def test_the_offset_is_the_mean_logit_difference_and_cancels_a_shift(tmp_path, data: CompressData) -> None:
    ref, moved = _shifted_pair(tmp_path, data, (0.5, -0.25))
    calibration = data.calibration(40)
    assert output_offset(ref, moved, calibration, threads=1) == pytest.approx([-0.5, 0.25], abs=1e-5)
    offset = correct_output_bias(ref, moved, calibration, threads=1)
    assert offset == pytest.approx([-0.5, 0.25], abs=1e-5)
    x = next(data.batches("test", chunk=8)).numpy()
    np.testing.assert_allclose(onnx_predictor(moved, 1)(x), onnx_predictor(ref, 1)(x), atol=1e-5)


def test_the_offset_is_applied_once_and_must_fit_the_outputs(tmp_path, data: CompressData) -> None:
    ref, _ = _shifted_pair(tmp_path, data, (0.0, 0.0))
    with pytest.raises(CompressError, match="2 outputs but an offset of 3"):
        add_output_offset(ref, np.zeros(3, np.float32))
    add_output_offset(ref, np.zeros(2, np.float32))
    with pytest.raises(CompressError, match="already applied"):
        add_output_offset(ref, np.zeros(2, np.float32))


def _corrected_in_graph(path) -> bool:  # noqa: ANN001
    import onnx

    return any(n.name == "int8_output_correction" for n in onnx.load(str(path)).graph.node)


@pytest.mark.parametrize("correct", [True, False])
def test_a_missed_budget_escalates_to_the_corrected_file(tmp_path, trained: nn.Module, data: CompressData,
                                                         ccfg: CompressConfig, train_cfg: TrainConfig,
                                                         correct: bool) -> None:
    cfg = ccfg.model_copy(update={"int8_output_correction": correct, "accuracy_budget": 0.0})
    ctx = RecipeContext(trained, data, cfg, train_cfg, tmp_path, 1, 1.01)  # unreachable: every step is tried
    cm = RECIPES.get("int8-static")(ctx)
    assert [a["output_correction"] for a in cm.attempts] == ([False, True] if correct else [False])
    if correct:
        assert len(cm.attempts[1]["output_offset"]) == 2


def test_a_file_within_budget_is_kept_uncorrected(tmp_path, trained: nn.Module, data: CompressData,
                                                  ccfg: CompressConfig, train_cfg: TrainConfig) -> None:
    ctx = RecipeContext(trained, data, ccfg, train_cfg, tmp_path, 1, split_bacc(torch_predictor(trained), data))
    cm = RECIPES.get("int8-static")(ctx)  # ccfg's budget is 1.0: the first file fits
    assert [a["output_correction"] for a in cm.attempts] == [False] and not _corrected_in_graph(cm.path)


def test_the_kept_corrected_file_holds_the_correction(tmp_path, monkeypatch, trained: nn.Module,
                                                      data: CompressData, ccfg: CompressConfig,
                                                      train_cfg: TrainConfig) -> None:
    """When only the corrected file fits, that file (with its Add) is the one kept."""
    import medopt.compress.candidate as recipes  # calibrated_int8 lives there

    real, real_correct = recipes.split_bacc, recipes.correct_output_bias
    _scoring_corrected = [False]  # every file scores 0.1 until a correction was made, then 0.9
    monkeypatch.setattr(recipes, "split_bacc",
                        lambda predictor, d, split="val": 0.9 if _scoring_corrected[0] else 0.1)

    def correct(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        _scoring_corrected[0] = True
        return real_correct(*args, **kwargs)

    monkeypatch.setattr(recipes, "correct_output_bias", correct)
    ctx = RecipeContext(trained, data, ccfg.model_copy(update={"accuracy_budget": 0.01}), train_cfg, tmp_path, 1,
                        real(torch_predictor(trained), data))
    ctx.baseline_val_bacc = 0.9
    cm = RECIPES.get("int8-static")(ctx)
    assert [a["within_budget"] for a in cm.attempts] == [False, True]
    assert _corrected_in_graph(cm.path) and sorted(p.name for p in cm.path.parent.iterdir()) == ["model.onnx"]
