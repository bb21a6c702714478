from __future__ import annotations

import numpy as np
import pytest
import torch
from compress_helpers import SIZE
from torch import nn

from medopt.compress.split_inputs import CompressData
from medopt.compress.errors import CompressError
from medopt.compress.export import export_onnx
from medopt.compress.measure import onnx_predictor, predict_split, torch_predictor
from medopt.compress.quantize import Pt2eError, export_graph, quantize_onnx_static, quantize_pt2e


def _argmax_agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a.argmax(1) == b.argmax(1)))


def test_ort_static_int8_runs_and_agrees(tmp_path, trained: nn.Module, data: CompressData) -> None:
    fp32 = export_onnx(trained, tmp_path / "fp32.onnx", input_shape=data.input_shape, opset=17)
    q = quantize_onnx_static(fp32, tmp_path / "int8.onnx", data.calibration(64))
    import onnx

    ops = {n.op_type for n in onnx.load(str(q)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    _, p_fp32 = predict_split(torch_predictor(trained), data, "test")
    _, p_int8 = predict_split(onnx_predictor(q, 1), data, "test")
    assert p_int8.shape == p_fp32.shape
    assert _argmax_agreement(p_fp32, p_int8) >= 0.8
    assert onnx_predictor(q, 1)(np.zeros((32, *data.input_shape), np.float32)).shape == (32, 2)


def test_ort_calibration_must_be_a_batch(tmp_path) -> None:
    with pytest.raises(CompressError, match="calibration"):
        quantize_onnx_static(tmp_path / "x.onnx", tmp_path / "y.onnx", torch.zeros(1, SIZE, SIZE))


def test_pt2e_static_int8_runs_and_agrees(trained: nn.Module, data: CompressData) -> None:
    graph = quantize_pt2e(trained, torch.randn(2, *data.input_shape), data.calibration(64))
    _, p_fp32 = predict_split(torch_predictor(trained), data, "test")
    _, p_int8 = predict_split(torch_predictor(graph), data, "test")
    assert _argmax_agreement(p_fp32, p_int8) >= 0.8
    assert torch_predictor(graph)(np.zeros((1, *data.input_shape), np.float32)).shape == (1, 2)


class _DataDependent(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # data-dependent control flow: torch.export cannot capture it
            return x.flatten(1)[:, :2]
        return -x.flatten(1)[:, :2]


def test_pt2e_failure_is_a_clear_error() -> None:
    with pytest.raises(Pt2eError, match="torch.export failed for _DataDependent"):
        quantize_pt2e(_DataDependent(), torch.randn(2, 1, SIZE, SIZE), torch.randn(4, 1, SIZE, SIZE))
    with pytest.raises(CompressError, match="batch >= 2"):
        export_graph(_DataDependent(), torch.randn(1, 1, SIZE, SIZE))
