"""Int8 post-training quantization (ONNX Runtime static QDQ, PyTorch PT2E) and PT2E quantization-aware training.

Why both: which runtime's int8 kernels are fastest depends on the model and the CPU, so each is measured, never
assumed. Calibration uses TRAINING images preprocessed exactly as in training.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medopt.compress.split_inputs import CompressData
from medopt.compress.errors import CompressError
from medopt.compress.export import INPUT_NAME
from medopt.compress.finetune import finetune
from medopt.config import CompressConfig, TrainConfig

logger = logging.getLogger(__name__)

CALIBRATION_BATCH = 16


class Pt2eError(CompressError):
    """The PT2E flow (torch.export, prepare/convert) failed for this model; recipes record it, never hide it."""


def _chunks(x: torch.Tensor, size: int = CALIBRATION_BATCH) -> Iterator[torch.Tensor]:
    for start in range(0, x.shape[0], size):
        yield x[start:start + size]


CALIBRATION_METHODS = ("minmax", "percentile", "entropy")


def quantize_onnx_static(fp32_path: str | Path, out_path: str | Path, calibration: torch.Tensor,
                         method: str = "minmax", op_types: list[str] | None = None) -> Path:
    """Static int8 QDQ model (per-channel int8 weights, uint8 activations, ``method`` calibration on ``calibration``).

    ``quant_pre_process`` (shape inference and graph optimisation) runs first, as ONNX Runtime recommends.
    MinMax keeps every activation's full range; percentile (99.999th) and entropy clip rare outliers, which can
    save models whose activation ranges are dominated by a few extreme values. ``op_types`` limits quantization
    to those ONNX op types (default: every type ONNX Runtime can quantize).
    """
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    if method not in CALIBRATION_METHODS:
        raise CompressError(f"calibration method must be one of {CALIBRATION_METHODS}, got {method!r}")
    calibrate = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                 "entropy": CalibrationMethod.Entropy}[method]
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if calibration.ndim != 4 or calibration.shape[0] < 1:
        raise CompressError(f"calibration must be a (N>=1, C, H, W) batch, got {tuple(calibration.shape)}")
    feeds = [{INPUT_NAME: c.numpy()} for c in _chunks(calibration.float().contiguous())]

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(feeds)

        def get_next(self) -> dict[str, Any] | None:
            return next(self._it, None)

    out = Path(out_path)
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "preprocessed.onnx"
        try:
            quant_pre_process(str(fp32_path), str(pre))
        except Exception as exc:  # onnxruntime raises plain Exceptions from shape inference
            raise CompressError(f"{fp32_path}: quant_pre_process failed: {type(exc).__name__}: {exc}") from None
        quantize_static(str(pre), str(out), _Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8, calibrate_method=calibrate,
                        op_types_to_quantize=op_types)
    logger.info("ORT static int8 (%s calibration): %s (%.1f KiB)", method, out, out.stat().st_size / 1024)
    return out


def _quantizer(is_qat: bool) -> Any:
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq

    quantizer = xiq.X86InductorQuantizer()
    quantizer.set_global(xiq.get_default_x86_inductor_quantization_config(is_qat=is_qat))
    return quantizer


def export_graph(model: nn.Module, example: torch.Tensor) -> torch.fx.GraphModule:
    """``torch.export`` with a dynamic batch axis (``example`` must have batch >= 2 so it is not specialised)."""
    if example.shape[0] < 2:
        raise CompressError(f"PT2E export needs an example batch >= 2, got {tuple(example.shape)}")
    try:
        return torch.export.export(model, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},)).module()
    except Exception as exc:  # torch.export raises many error types for unsupported graphs
        raise Pt2eError(f"torch.export failed for {type(model).__name__}: {type(exc).__name__}: {exc}") from None


def _switchable(graph: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Let ``.train()``/``.eval()`` (called by ``fit`` and predictors) switch an exported graph's dropout/BN ops."""
    from torchao.quantization.pt2e import allow_exported_model_train_eval

    return allow_exported_model_train_eval(graph)


def quantize_pt2e(model: nn.Module, example: torch.Tensor, calibration: torch.Tensor) -> torch.fx.GraphModule:
    """PT2E static int8 (X86InductorQuantizer): export, insert observers, calibrate, convert to q/dq ops.

    Raises:
        Pt2eError: export, preparation or conversion failed for this model.
    """
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    model = model.eval()
    graph = export_graph(model, example)
    try:
        prepared = prepare_pt2e(graph, _quantizer(is_qat=False))
        with torch.no_grad():
            for chunk in _chunks(calibration):
                prepared(chunk)
        return _switchable(convert_pt2e(prepared))
    except Exception as exc:  # torchao raises assertion/runtime errors for unsupported patterns
        raise Pt2eError(f"PT2E quantization failed for {type(model).__name__}: {type(exc).__name__}: {exc}") from None


def qat_pt2e(
    model: nn.Module, example: torch.Tensor, data: CompressData, train: TrainConfig, cfg: CompressConfig
) -> torch.fx.GraphModule:
    """Quantization-aware fine-tuning (``prepare_qat_pt2e``) for ``max(1, cfg.finetune_epochs)`` epochs, converted.

    Raises:
        Pt2eError: the QAT graph could not be prepared or converted.
    """
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_qat_pt2e

    graph = export_graph(model.train(), example)
    try:
        prepared = prepare_qat_pt2e(graph, _quantizer(is_qat=True))
    except Exception as exc:
        raise Pt2eError(f"prepare_qat_pt2e failed for {type(model).__name__}: {type(exc).__name__}: {exc}") from None
    finetune(_switchable(prepared), data, train, cfg, epochs=max(1, cfg.finetune_epochs), keep_if_worse=True)
    move_exported_model_to_eval(prepared)
    try:
        return _switchable(convert_pt2e(prepared))
    except Exception as exc:
        raise Pt2eError(f"convert_pt2e after QAT failed: {type(exc).__name__}: {exc}") from None


def save_graph(graph: nn.Module, example: torch.Tensor, path: str | Path) -> Path:
    """Save a (quantized) graph as a ``torch.export`` program (``.pt2``), loadable with ``torch.export.load``."""
    out = Path(path)
    program = torch.export.export(graph, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, str(out))
    return out
