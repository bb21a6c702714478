"""ONNX export with a dynamic batch axis, and a numerical agreement check against PyTorch.

Why the TorchScript exporter: on timm CNNs it honours the requested opset exactly and exports in about a second,
while the dynamo exporter upgrades opset 17 requests to 18 and fails its down-conversion on some graphs.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medopt.compress.errors import CompressError, OnnxAgreementError

logger = logging.getLogger(__name__)

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
DEFAULT_TOLERANCE = 1e-3


def export_onnx(
    model: nn.Module,
    path: str | Path,
    *,
    input_shape: tuple[int, int, int],
    opset: int,
    dynamic_batch: bool = True,
) -> Path:
    """Export ``model`` (eval mode) to ``path`` with input "input" (N,C,H,W) and output "logits".

    Args:
        input_shape: (channels, height, width) of one sample.
        opset: ONNX opset version.
        dynamic_batch: make the batch axis symbolic so one file serves batch 1 and batch 32.
    """
    if len(input_shape) != 3 or any(int(d) < 1 for d in input_shape):
        raise CompressError(f"export_onnx: input_shape must be (C, H, W) > 0, got {input_shape}")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    example = torch.zeros((2, *input_shape))
    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (example,), str(out), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_axes=axes, opset_version=opset, dynamo=False)
    finally:
        model.train(was_training)
    logger.info("exported %s (opset %d, %.1f KiB)", out, opset, out.stat().st_size / 1024)
    return out


def ort_session(path: str | Path, threads: int | None = None) -> "object":
    """An onnxruntime CPU session with a fixed intra-op thread count (same count for every candidate)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def check_onnx_agreement(
    model: nn.Module, path: str | Path, example: torch.Tensor, *, tolerance: float = DEFAULT_TOLERANCE
) -> float:
    """Max absolute logit difference between ``model`` and the ONNX file on ``example``.

    The tolerance is relative to the logits' scale (``tolerance * max(1, max|logit|)``), since fp32 kernels of the
    two runtimes accumulate in different orders.

    Raises:
        OnnxAgreementError: the difference exceeds the tolerance (or shapes differ).
    """
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            expected = model(example).float().cpu().numpy()
    finally:
        model.train(was_training)
    got = ort_session(path, threads=1).run([OUTPUT_NAME], {INPUT_NAME: example.cpu().numpy().astype(np.float32)})[0]
    if got.shape != expected.shape:
        raise OnnxAgreementError(f"{path}: ONNX output shape {got.shape} != PyTorch {expected.shape}")
    diff = float(np.max(np.abs(got - expected))) if got.size else 0.0
    limit = tolerance * max(1.0, float(np.max(np.abs(expected))) if expected.size else 1.0)
    if not np.isfinite(diff) or diff > limit:
        raise OnnxAgreementError(f"{path}: ONNX logits differ from PyTorch by {diff:.3g} (limit {limit:.3g})")
    return diff
