"""One inference request per protocol, built once and sent many times by the load generator.

Why built once: the generator must spend its time sending, not serialising; every request of a run carries the same
payload, so its bytes are computed before the clock starts. Protocols: KServe V1 (JSON ``instances``), Open
Inference Protocol V2 REST with JSON ``data`` or the binary tensor extension, V2 gRPC, and ``raw``: an encoded image
file POSTed to ``/infer`` as it is (a hybrid placement node's edge endpoint, ``medopt.bench.node``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import orjson

from medopt.serve.binary import encode_binary_request

Protocol = Literal["v1", "v2-json", "v2-binary", "v2-grpc", "raw"]
PROTOCOLS: tuple[str, ...] = ("v1", "v2-json", "v2-binary", "v2-grpc", "raw")


@dataclass(frozen=True)
class Outcome:
    """What one request returned: ``error`` is None on success, else a short kind such as ``http-503``."""

    error: str | None
    bytes_out: int
    bytes_in: int


Sender = Callable[[], Awaitable[Outcome]]


@dataclass(frozen=True)
class HttpRequest:
    path: str
    body: bytes
    headers: dict[str, str]


def raw_request(payload: bytes) -> HttpRequest:
    """An encoded image file as the body of ``POST /infer`` (content type from its magic bytes)."""
    ctype = "image/png" if payload.startswith(b"\x89PNG") else "application/octet-stream"
    return HttpRequest("/infer", payload, {"Content-Type": ctype})


def http_request(protocol: str, model: str, x: np.ndarray) -> HttpRequest:
    """Path, body and headers of one REST inference request carrying ``x`` (float32, batch axis first)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if protocol == "v1":
        body = orjson.dumps({"instances": x.tolist()})
        return HttpRequest(f"/v1/models/{model}:predict", body, {"Content-Type": "application/json"})
    path = f"/v2/models/{model}/infer"
    if protocol == "v2-json":
        payload = {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                               "data": x.ravel().tolist()}]}
        return HttpRequest(path, orjson.dumps(payload), {"Content-Type": "application/json"})
    if protocol == "v2-binary":
        body, json_length = encode_binary_request(x)
        return HttpRequest(path, body, {"Inference-Header-Content-Length": str(json_length),
                                        "Content-Type": "application/octet-stream"})
    raise ValueError(f"unknown REST protocol {protocol!r}; valid: v1, v2-json, v2-binary")


def http_sender(session: Any, base_url: str, request: HttpRequest, timeout_s: float) -> Sender:
    """A coroutine factory that POSTs ``request`` with an ``aiohttp`` session and classifies the outcome."""
    import aiohttp

    url = base_url.rstrip("/") + request.path
    timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def send() -> Outcome:
        try:
            async with session.post(url, data=request.body, headers=request.headers, timeout=timeout) as response:
                body = await response.read()
                error = None if response.status == 200 else f"http-{response.status}"
                return Outcome(error, len(request.body), len(body))
        except TimeoutError:
            return Outcome("timeout", len(request.body), 0)
        except aiohttp.ClientConnectorError:
            return Outcome("connect", len(request.body), 0)
        except (aiohttp.ClientError, ConnectionError):
            return Outcome("connection-lost", len(request.body), 0)

    return send


def grpc_sender(channel: Any, model: str, x: np.ndarray, timeout_s: float) -> Sender:
    """A coroutine factory for one V2 gRPC ``ModelInfer`` with raw float32 contents over a ``grpc.aio`` channel."""
    import grpc

    from medopt.serve.launch import import_kserve

    import_kserve()
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

    x = np.ascontiguousarray(x, dtype=np.float32)
    request = pb.ModelInferRequest(model_name=model, inputs=[
        pb.ModelInferRequest.InferInputTensor(name="input", datatype="FP32", shape=list(x.shape))])
    request.raw_input_contents.append(x.tobytes())
    size = request.ByteSize()
    stub = pb_grpc.GRPCInferenceServiceStub(channel)

    async def send() -> Outcome:
        try:
            response = await stub.ModelInfer(request, timeout=timeout_s)
            return Outcome(None, size, response.ByteSize())
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            kind = "timeout" if code == grpc.StatusCode.DEADLINE_EXCEEDED else f"grpc-{code.name.lower()}"
            return Outcome(kind, size, 0)

    return send
