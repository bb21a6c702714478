"""The V2 binary tensor extension, decoded with numpy.

A binary request is a JSON header (its length in the ``Inference-Header-Content-Length`` header) followed by the raw
tensor bytes. kserve 0.21's ``InferRequest.from_bytes`` turns every binary tensor into a Python list element by
element (about 30 ms for one 224x224 RGB image); here the bytes stay bytes and ``as_numpy`` later views them with
``np.frombuffer``. Every length is checked first, so a truncated or inconsistent payload is a one-line client error.

kserve is imported inside the decoding functions only: clients import this module for ``encode_binary_request``
and must not pay kserve's import (seconds, and it parses ``sys.argv``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson

from medopt.serve.codec_error import CodecError

ITEM_BYTES = {"BOOL": 1, "UINT8": 1, "INT8": 1, "UINT16": 2, "INT16": 2, "FP16": 2, "UINT32": 4, "INT32": 4,
              "FP32": 4, "UINT64": 8, "INT64": 8, "FP64": 8, "BYTES": 0}


def _header(body: bytes, json_length: int) -> dict[str, Any]:
    if not 0 < json_length <= len(body):
        raise CodecError(f"Inference-Header-Content-Length {json_length} outside the body's {len(body)} bytes")
    try:
        header = orjson.loads(body[:json_length])
    except orjson.JSONDecodeError as exc:
        raise CodecError(f"binary request: JSON header is not valid JSON ({exc.msg})") from None
    if not isinstance(header, dict) or not isinstance(header.get("inputs"), list) or not header["inputs"]:
        raise CodecError("binary request: JSON header needs a non-empty 'inputs' list")
    return header


def _check_input(spec: Any, index: int) -> tuple[str, list[int], str, dict[str, Any]]:
    if not isinstance(spec, dict):
        raise CodecError(f"inputs[{index}] must be an object")
    name, shape, dtype = spec.get("name"), spec.get("shape"), spec.get("datatype")
    if not isinstance(name, str) or not name:
        raise CodecError(f"inputs[{index}].name must be a non-empty string")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise CodecError(f"input '{name}': shape must be a list of non-negative integers, got {shape!r}")
    if dtype not in ITEM_BYTES:
        raise CodecError(f"input '{name}': unknown datatype {dtype!r}")
    params = spec.get("parameters") or {}
    if not isinstance(params, dict):
        raise CodecError(f"input '{name}': parameters must be an object")
    return name, shape, dtype, params


def _binary_size(name: str, shape: list[int], dtype: str, params: dict[str, Any]) -> int:
    size = params.get("binary_data_size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise CodecError(f"input '{name}': needs 'data' or a non-negative integer parameters.binary_data_size")
    expected = math.prod(shape) * ITEM_BYTES[dtype]
    if dtype != "BYTES" and size != expected:
        raise CodecError(f"input '{name}': binary_data_size {size} != {expected} bytes for {dtype} {shape}")
    return size


def decode_binary_request(body: bytes, json_length: int, model_name: str) -> Any:
    """A V2 binary request body to a kserve ``InferRequest`` whose binary inputs keep their raw bytes.

    Raises:
        CodecError: bad header length or JSON, inconsistent sizes, or a payload shorter/longer than declared.
    """
    from kserve import InferInput, InferRequest
    from kserve.protocol.infer_type import RequestedOutput

    from medopt.serve.kserve_compat import raw_input

    header = _header(body, json_length)
    start, inputs = json_length, []
    for i, spec in enumerate(header["inputs"]):
        name, shape, dtype, params = _check_input(spec, i)
        if spec.get("data") is not None:
            inputs.append(InferInput(name=name, shape=shape, datatype=dtype, data=spec["data"],
                                     parameters=params or None))
            continue
        end = start + _binary_size(name, shape, dtype, params)
        if end > len(body):
            raise CodecError(f"input '{name}': truncated binary payload ({len(body) - start} of {end - start} bytes)")
        inputs.append(raw_input(name, shape, dtype, params or None, body[start:end]))
        start = end
    if start != len(body):
        raise CodecError(f"binary request: {len(body) - start} unexpected bytes after the declared tensors")
    outputs = header.get("outputs")
    requested = None
    if isinstance(outputs, list) and outputs:
        if not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs):
            raise CodecError("binary request: each of 'outputs' needs a 'name'")
        requested = [RequestedOutput(name=o["name"], parameters=o.get("parameters")) for o in outputs]
    params = header.get("parameters")
    return InferRequest(model_name=model_name, request_id=header.get("id"), infer_inputs=inputs,
                        parameters=params if isinstance(params, dict) else None, request_outputs=requested)


def _requested_outputs(header: dict[str, Any], where: str) -> Any:
    from kserve.protocol.infer_type import RequestedOutput

    outputs = header.get("outputs")
    if outputs is None:
        return None
    if not isinstance(outputs, list):
        raise CodecError(f"{where}: 'outputs' must be a list")
    if not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs):
        raise CodecError(f"{where}: each of 'outputs' needs a 'name'")
    if any(o.get("parameters") is not None and not isinstance(o["parameters"], dict) for o in outputs):
        raise CodecError(f"{where}: outputs[].parameters must be an object")
    return [RequestedOutput(name=o["name"], parameters=o.get("parameters") or {}) for o in outputs] or None


def decode_json_request(body: bytes, model_name: str) -> Any:
    """A V2 JSON request body to a kserve ``InferRequest``, as kserve's pydantic ``InferenceRequest`` route would
    build it (``InferRequest.from_inference_request``), without the pydantic model in between.

    Raises:
        CodecError: not JSON, or not the V2 request object (``inputs`` with name, shape, datatype and ``data``).
    """
    from kserve import InferInput, InferRequest

    try:
        header = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise CodecError(f"request body is not valid JSON ({exc.msg})") from None
    if not isinstance(header, dict) or not isinstance(header.get("inputs"), list) or not header["inputs"]:
        raise CodecError("V2 request needs a non-empty 'inputs' list")
    inputs = []
    for i, spec in enumerate(header["inputs"]):
        name, shape, dtype, params = _check_input(spec, i)
        data = spec.get("data")
        if not isinstance(data, list):
            raise CodecError(f"input '{name}': 'data' must be a list")
        if dtype == "FP16" and data:
            raise CodecError(f"input '{name}': FP16 data cannot be sent as JSON; use the binary extension")
        inputs.append(InferInput(name=name, shape=shape, datatype=dtype, data=data, parameters=params))
    request_id, params = header.get("id"), header.get("parameters")
    if request_id is not None and not isinstance(request_id, str):
        raise CodecError("V2 request: 'id' must be a string")
    if params is not None and not isinstance(params, dict):
        raise CodecError("V2 request: 'parameters' must be an object")
    return InferRequest(model_name=model_name, request_id=request_id, infer_inputs=inputs, parameters=params,
                        request_outputs=_requested_outputs(header, "V2 request"))


def kserve_list_decode(body: bytes, json_length: int, model_name: str) -> np.ndarray:
    """kserve's own decoding (per-element Python lists) then back to numpy: the baseline the benchmark compares."""
    from kserve import InferRequest

    request = InferRequest.from_bytes(body, json_length, model_name)
    return request.inputs[0].as_numpy()


def encode_binary_request(x: np.ndarray, name: str = "input") -> tuple[bytes, int]:
    """An FP32/UINT8 array as a V2 binary request body and its JSON header length (clients and benchmarks)."""
    dtype = {np.dtype(np.float32): "FP32", np.dtype(np.uint8): "UINT8"}.get(x.dtype)
    if dtype is None:
        raise CodecError(f"encode_binary_request supports float32 and uint8 arrays, got {x.dtype}")
    raw = np.ascontiguousarray(x).tobytes()
    header = orjson.dumps({"inputs": [{"name": name, "shape": list(x.shape), "datatype": dtype,
                                       "parameters": {"binary_data_size": len(raw)}}],
                           "outputs": [{"name": o, "parameters": {"binary_data": False}}
                                       for o in ("probabilities", "label", "class_name")]})
    return header + raw, len(header)
