"""Compression: structured/unstructured pruning, distillation, int8 quantization, ONNX export, named recipes.

Names load lazily so importing the package stays cheap (no torch-pruning, onnxruntime or torchao until used).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "CompressError": "errors",
    "OnnxAgreementError": "errors",
    "export_onnx": "export",
    "check_onnx_agreement": "export",
    "prune_structured": "prune",
    "unstructured_prune": "prune",
    "count_params_macs": "prune",
    "DistillationLoss": "distill",
    "kd_loss": "distill",
    "quantize_onnx_static": "quantize",
    "quantize_pt2e": "quantize",
    "RECIPES": "recipes",
    "CompressedModel": "recipes",
    "run_compress": "stage",
    "CompressResult": "stage",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'medopt.compress' has no attribute {name!r}")
    return getattr(importlib.import_module(f"medopt.compress.{module}"), name)
