"""V2 binary extension: numpy decoding equals kserve's, and every malformed length is a client error."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from medopt.serve.binary import decode_binary_request, encode_binary_request, kserve_list_decode
from medopt.serve.codec import CodecError


def test_numpy_decode_equals_kserve_list_decode() -> None:
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    body, n = encode_binary_request(x)
    request = decode_binary_request(body, n, "m")
    got = request.inputs[0].as_numpy()
    np.testing.assert_array_equal(got, x)
    np.testing.assert_array_equal(kserve_list_decode(body, n, "m"), x)
    assert got.dtype == np.float32 and [o.name for o in request.request_outputs] == ["probabilities", "label",
                                                                                      "class_name"]


def _body(header: dict, payload: bytes) -> tuple[bytes, int]:
    h = orjson.dumps(header)
    return h + payload, len(h)


@pytest.mark.parametrize(("header", "payload", "match"), [
    ({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                  "parameters": {"binary_data_size": 16}}]}, b"\0" * 10, "truncated"),
    ({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                  "parameters": {"binary_data_size": 12}}]}, b"\0" * 12, "!= 16 bytes"),
    ({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                  "parameters": {"binary_data_size": 16}}]}, b"\0" * 20, "unexpected bytes"),
    ({"inputs": [{"name": "input", "shape": [-1, 4], "datatype": "FP32"}]}, b"", "non-negative"),
    ({"inputs": [{"name": "input", "shape": [4], "datatype": "FP99"}]}, b"", "unknown datatype"),
    ({"inputs": [{"name": "input", "shape": [4], "datatype": "FP32"}]}, b"", "binary_data_size"),
    ({"inputs": []}, b"", "non-empty 'inputs'"),
    ({"inputs": ["x"]}, b"", "must be an object"),
])
def test_malformed_binary_requests_raise(header: dict, payload: bytes, match: str) -> None:
    body, n = _body(header, payload)
    with pytest.raises(CodecError, match=match):
        decode_binary_request(body, n, "m")


def test_bad_header_length_and_json() -> None:
    body, n = encode_binary_request(np.zeros((1, 1, 2, 2), dtype=np.float32))
    for length in (0, len(body) + 1):
        with pytest.raises(CodecError, match="outside the body"):
            decode_binary_request(body, length, "m")
    with pytest.raises(CodecError, match="not valid JSON"):
        decode_binary_request(body, n - 3, "m")
