"""V2 model metadata (``GET /v2/models/NAME``): the same answer from the predictor and the transformer.

Both advertise what the predictor's model takes, one FP32 (N,C,H,W) input; UINT8 images and BYTES files are
accepted too and decoded by ``request.decode_request``. Before loading, unknown sizes are -1.
"""

from __future__ import annotations

from typing import Any

from medopt.serve.codec import OUTPUT_CLASS, OUTPUT_LABEL, OUTPUT_PROBS, InputSpec, ModelInfo

INPUT_NAME = "input"


def input_types(spec: InputSpec | None) -> list[dict[str, Any]]:
    """The one model input, its shape once ``spec`` is known."""
    shape = [-1, *spec.shape] if spec else [-1, -1, -1, -1]
    return [{"name": INPUT_NAME, "datatype": "FP32", "shape": shape}]


def output_types(info: ModelInfo | None) -> list[dict[str, Any]]:
    """Probabilities, label and class name per row, the class count once ``info`` is known."""
    classes = len(info.class_names) if info else -1
    return [{"name": OUTPUT_PROBS, "datatype": "FP32", "shape": [-1, classes]},
            {"name": OUTPUT_LABEL, "datatype": "INT64", "shape": [-1]},
            {"name": OUTPUT_CLASS, "datatype": "BYTES", "shape": [-1]}]
