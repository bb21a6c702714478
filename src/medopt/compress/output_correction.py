"""Output bias correction for int8 models: put the quantized model's mean logits back where the fp32 model's were.

Why: int8 rounding errors do not average out to zero through a deep network; they add up to a systematic shift
of the logits. A decision is a threshold on logits, so a shift moves the operating point even when the ranking
(AUC) is kept: ResNet-50 pruned 20%, fine-tuned and quantized kept validation AUC (0.930 -> 0.925) but its mean
logit margin fell from +0.97 to +0.59 and balanced accuracy lost 3.7 points. The correction is label-free: the
mean difference between the fp32 and the int8 logits on the calibration images (Nagel et al., 2019, "empirical
bias correction", applied at the output), added to the int8 graph as one fp32 ``Add``. The recipes apply it only
after an int8 file misses the accuracy budget (see ``calibrated_int8``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from medopt.atomic import atomic_write_bytes
from medopt.compress.errors import CompressError
from medopt.compress.export import OUTPUT_NAME
from medopt.compress.measure import onnx_predictor

logger = logging.getLogger(__name__)

UNCORRECTED = f"{OUTPUT_NAME}_uncorrected"
OFFSET = "int8_output_offset"


def output_offset(fp32: Path, int8: Path, calibration: torch.Tensor, threads: int, chunk: int = 16) -> np.ndarray:
    """Mean of (fp32 logits - int8 logits) over ``calibration``, one value per output."""
    ref, quant = onnx_predictor(fp32, threads), onnx_predictor(int8, threads)
    diffs = [ref(x) - quant(x) for x in (calibration[i:i + chunk].numpy() for i in range(0, len(calibration), chunk))]
    if not diffs:
        raise CompressError("output bias correction needs at least one calibration image")
    return np.concatenate(diffs).mean(axis=0).astype(np.float32)


def add_output_offset(path: Path, offset: np.ndarray) -> None:
    """Rewrite the model at ``path`` (atomically) so that its ``logits`` output is the old one plus ``offset``."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    if any(n.name == OFFSET for n in graph.initializer):
        raise CompressError(f"{path}: the output offset is already applied")
    outputs = [o for o in graph.output if o.name == OUTPUT_NAME]
    if len(outputs) != 1:
        raise CompressError(f"{path}: expected one graph output named {OUTPUT_NAME!r}")
    width = outputs[0].type.tensor_type.shape.dim[-1]
    if width.HasField("dim_value") and width.dim_value != offset.size:
        raise CompressError(f"{path}: {width.dim_value} outputs but an offset of {offset.size} values")
    for node in graph.node:
        node.output[:] = [UNCORRECTED if o == OUTPUT_NAME else o for o in node.output]
        node.input[:] = [UNCORRECTED if i == OUTPUT_NAME else i for i in node.input]
    graph.initializer.append(numpy_helper.from_array(offset.astype(np.float32).reshape(-1), OFFSET))
    graph.node.append(helper.make_node("Add", [UNCORRECTED, OFFSET], [OUTPUT_NAME], name="int8_output_correction"))
    atomic_write_bytes(path, model.SerializeToString())


def correct_output_bias(fp32: Path, int8: Path, calibration: torch.Tensor, threads: int) -> np.ndarray:
    """Measure the int8 model's mean logit shift on ``calibration`` and cancel it in ``int8``; returns the offset."""
    offset = output_offset(fp32, int8, calibration, threads)
    add_output_offset(int8, offset)
    logger.info("int8 output bias correction: offset %s", np.array2string(offset, precision=4))
    return offset
