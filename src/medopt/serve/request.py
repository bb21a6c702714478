"""Request decoding for the predictor (``model.py``) and the transformer (``transformer_model.py``), in one place.

Two steps, as KServe splits them: the server's data plane turns a V2 binary body into an ``InferRequest``
(``decode_binary_body``, numpy views of the bytes); the model then gets a V1 JSON object or an ``InferRequest``
(V2 JSON, binary or gRPC) and ``decode_request`` turns it into the model's float32 (N,C,H,W) batch through
``codec.py``. Every refusal becomes kserve's ``InvalidInput`` (HTTP 400, gRPC INVALID_ARGUMENT) carrying the codec's
one-line reason, so predictor and transformer refuse the same request with the same answer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from kserve import InferRequest
from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER
from kserve.errors import InvalidInput

from medopt.serve.binary import decode_binary_request
from medopt.serve.codec import CodecError, InputSpec, decode_v1, decode_v2_inputs


def decode_binary_body(body: bytes, headers: dict[str, str], model_name: str) -> InferRequest:
    """A V2 binary-extension body (JSON header length in ``Inference-Header-Content-Length``) as an ``InferRequest``."""
    raw = headers.get(INFERENCE_CONTENT_LENGTH_HEADER)
    if raw is None or not raw.strip().isdigit():
        raise InvalidInput(f"binary request needs an integer '{INFERENCE_CONTENT_LENGTH_HEADER}' header")
    try:
        return decode_binary_request(body, int(raw), model_name)
    except CodecError as exc:
        raise InvalidInput(str(exc)) from None


def decode_request(payload: Any, spec: InputSpec | None, model_name: str) -> np.ndarray:
    """``payload`` (V1 dict or ``InferRequest``) as the model's input batch; ``spec`` None means not loaded yet."""
    if spec is None:
        raise InvalidInput(f"model '{model_name}' is not loaded")
    try:
        if isinstance(payload, InferRequest):
            return decode_v2_inputs(payload.inputs, spec)
        return decode_v1(payload, spec)
    except CodecError as exc:
        raise InvalidInput(str(exc)) from None
