"""The V2 inference fast paths: REST (binary extension and JSON) and gRPC straight to the model, on kserve's types.

Through kserve's own route a V2 REST request passes FastAPI's dependency solving and pydantic's ``InferenceRequest``
(a union of the model and ``bytes`` is tried for every body), the data plane's CloudEvent checks, ``Model.__call__``
(three prometheus timers), and the response back through pydantic and ``jsonable_encoder``. Here, for a ready
``MedoptModel``:

- REST: an ASGI layer in front of the routes reads ``POST /v2/models/<name>/infer`` itself; a binary body is decoded
  with numpy views of its bytes (``binary.decode_binary_request``), a JSON body with orjson
  (``binary.decode_json_request``, the same ``InferRequest`` kserve's route builds, no pydantic); the model's
  ``infer_v2`` decodes, batches and encodes as ``predict`` does, and the response is ``InferResponse.to_rest()``
  written with orjson (JSON) or as it is (binary outputs).
- gRPC: ``ModelInfer`` takes ``InferRequest.from_grpc`` (``raw_input_contents`` stay bytes, viewed by numpy) to
  ``infer_v2`` and ``to_grpc()``.

Anything else (another model type, a model not ready, other routes) goes to kserve unchanged, and errors answer as
kserve's handlers do: ``InvalidInput`` 400 / INVALID_ARGUMENT with the codec's one-line reason, ``{"error": ...}``.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import orjson
from kserve import InferRequest
from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER
from kserve.errors import InvalidInput
from kserve.protocol.grpc.servicer import InferenceServicer
from kserve.protocol.rest.v2_datamodels import InferenceResponse
from starlette.exceptions import HTTPException

from medopt.serve.binary import decode_json_request
from medopt.serve.codec_error import CodecError
from medopt.serve.request import decode_binary_body
from medopt.serve.timing import HEADER

logger = logging.getLogger(__name__)

_INFER = re.compile(r"^/v2/models/(?P<name>[^/]+)/infer$")
_LENGTH = INFERENCE_CONTENT_LENGTH_HEADER.lower().encode()


def fast_model(repository: Any, name: str) -> Any:
    """The ready medopt predictor called ``name``, or None (kserve's own path then handles the request)."""
    from medopt.serve.model import MedoptModel

    model = repository.get_model(name)
    return model if isinstance(model, MedoptModel) and model.ready and model.batcher is not None else None


async def _read_body(receive: Any) -> bytes:
    chunks = []
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("client disconnected")
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _send(send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


def _json_error(status: int, message: str) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    return status, orjson.dumps({"error": message}), [(b"content-type", b"application/json")]


class V2RestFastPath:
    """ASGI: ``POST /v2/models/<name>/infer`` of a ready medopt model, answered without FastAPI or pydantic."""

    def __init__(self, app: Any, repository: Any) -> None:
        self.app = app
        self.repository = repository

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            match = _INFER.match(scope["path"])
            model = fast_model(self.repository, match["name"]) if match else None
            if model is not None:
                await self._infer(model, scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _infer(self, model: Any, scope: dict[str, Any], receive: Any, send: Any) -> None:
        timing = model.timings.start()
        try:
            body = await _read_body(receive)
        except HTTPException as exc:  # the body limit, while the body streamed in
            await _send(send, *_json_error(exc.status_code, str(exc.detail)))
            return
        except ConnectionError:
            return
        if timing is not None:
            timing.mark("read")
        length = next((v for k, v in scope["headers"] if k == _LENGTH), None)
        try:
            if length is not None:
                request = decode_binary_body(body, {INFERENCE_CONTENT_LENGTH_HEADER: length.decode("latin-1")},
                                             model.name)
            else:
                try:
                    request = decode_json_request(body, model.name)
                except CodecError as exc:
                    raise InvalidInput(str(exc)) from None
            response = await model.infer_v2(request, timing)
            payload, json_size = response.to_rest()
        except InvalidInput as exc:
            logger.info("invalid request to '%s': %s", model.name, exc)
            await _send(send, *_json_error(400, str(exc)))
            return
        except Exception as exc:  # noqa: BLE001 - answered as kserve's generic handler does, never a dropped socket
            logger.error("inference of '%s' failed", model.name, exc_info=exc)
            await _send(send, *_json_error(500, f"{type(exc).__name__} : {exc}"))
            return
        headers: list[tuple[bytes, bytes]]
        if json_size is None:  # the fields, nulls included, kserve's route writes (its pydantic response model)
            out = orjson.dumps(InferenceResponse.model_validate(payload).model_dump(mode="json"))
            headers = [(b"content-type", b"application/json")]
        else:
            out = payload
            headers = [(_LENGTH, str(json_size).encode())]
        if timing is not None:
            timing.mark("encode")
            headers.append((HEADER.encode(), model.timings.record(timing).encode()))
        await _send(send, 200, out, headers)


class FastInferenceServicer(InferenceServicer):
    """kserve's V2 gRPC servicer whose ``ModelInfer`` goes straight to a ready medopt model."""

    def __init__(self, data_plane: Any, model_repository_extension: Any) -> None:
        super().__init__(data_plane, model_repository_extension)
        self._registry = data_plane.model_registry

    async def ModelInfer(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC's method name
        model = fast_model(self._registry, request.model_name)
        if model is None:
            return await super().ModelInfer(request, context)
        timing = model.timings.start()
        self.validate_grpc_request(request)
        response = await model.infer_v2(InferRequest.from_grpc(request), timing)
        message = response.to_grpc()
        if timing is not None:
            timing.mark("encode")
            context.set_trailing_metadata(((HEADER, model.timings.record(timing)),))
        return message
