"""KServe's REST (V1 + V2) and gRPC servers around medopt models, with the three changes medopt needs.

1. Bind to ``ServeConfig.host`` (127.0.0.1 by default); kserve 0.21 hard-codes 0.0.0.0 / [::].
2. Decode V2 binary tensors with numpy (``serve/request.py``, ``serve/binary.py``) instead of kserve's
   element-by-element lists.
3. Refuse bodies above ``max_body_bytes`` with 413 before reading them, and answer malformed JSON with one line.
4. V2 inference (REST and gRPC) of a ready medopt model takes the fast paths of ``serve/fastpath.py`` (no FastAPI,
   pydantic or kserve per-request machinery); with ``serve.timing`` on, ``GET /debug/timing`` reports where the time
   goes (``serve/timing.py``).
5. The event loop is uvloop's (uvicorn's parser is httptools), when installed.

The server starts listening first and loads the model in the background, so readiness probes see "not ready" until
the warm-up inference has run; a model that fails to load (e.g. a sha256 mismatch) stops the server with an error.
The private kserve members this needs are called through ``kserve_compat``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from concurrent import futures
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kserve import Model
from kserve.constants.constants import FASTAPI_APP_IMPORT_STRING
from kserve.model_repository import ModelRepository
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor
from kserve.protocol.model_repository_extension import ModelRepositoryExtension
from kserve.protocol.rest.server import RESTServer
from starlette.exceptions import HTTPException

from medopt.config import ServeConfig
from medopt.serve.fastpath import FastInferenceServicer, V2RestFastPath
from medopt.serve.kserve_compat import add_kserve_routes, request_exit
from medopt.serve.request import decode_binary_body

logger = logging.getLogger(__name__)


class NumpyDataPlane(DataPlane):
    """kserve's data plane with V2 binary requests decoded by numpy (raw bytes kept, no per-element lists)."""

    def decode_inference_request(self, body: Any, headers: dict[str, str], model_name: str) -> Any:
        if not isinstance(body, (bytes, bytearray)):
            return super().decode_inference_request(body, headers, model_name)
        return decode_binary_body(bytes(body), headers, model_name)


class BodyLimitMiddleware:
    """413 for bodies over ``max_bytes``: by Content-Length up front, else while the body streams in."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            response = JSONResponse({"error": f"request body over the {self.max_bytes}-byte limit"}, status_code=413)
            await response(scope, receive, send)
            return
        seen = 0

        async def limited() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise HTTPException(413, f"request body over the {self.max_bytes}-byte limit")
            return message

        await self.app(scope, limited, send)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    first = errors[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
    return JSONResponse({"error": f"invalid request at {where}: {first.get('msg', 'malformed body')}"}, status_code=400)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)


class MedoptRESTServer(RESTServer):
    """kserve's REST server on a fresh FastAPI app, bound to the configured host, with medopt's guards."""

    def __init__(self, dataplane: DataPlane, extension: ModelRepositoryExtension, cfg: ServeConfig) -> None:
        super().__init__(FASTAPI_APP_IMPORT_STRING, dataplane, extension, cfg.http_port, grace_period=5)
        self.config.host = cfg.host
        self.config.access_log = False
        self.max_body_bytes = cfg.max_body_bytes
        self.timing = cfg.timing

    def create_application(self) -> None:
        app = FastAPI(title="medopt model server", docs_url=None, redoc_url=None)
        if self.timing:
            app.add_api_route("/debug/timing", self._timing, methods=["GET"])
            app.add_api_route("/debug/timing/reset", self._timing_reset, methods=["POST"])
        add_kserve_routes(self, app)
        app.add_exception_handler(RequestValidationError, _validation_error)
        app.add_exception_handler(HTTPException, _http_error)
        app.add_middleware(V2RestFastPath, repository=self.dataplane.model_registry)
        app.add_middleware(BodyLimitMiddleware, max_bytes=self.max_body_bytes)  # added last: runs first
        self.config.app = app

    def _timed_models(self) -> dict[str, Any]:
        models = self.dataplane.model_registry.get_models().values()
        return {m.name: m.timings for m in models if getattr(m, "timings", None) is not None}

    async def _timing(self) -> dict[str, Any]:
        return {name: timings.summary() for name, timings in self._timed_models().items()}

    async def _timing_reset(self) -> dict[str, Any]:
        for timings in self._timed_models().values():
            timings.reset()
        return {"reset": True}

    def request_exit(self) -> None:
        request_exit(self)


class MedoptGRPCServer:
    """kserve's V2 gRPC servicer on ``host:port`` with messages capped at ``max_body_bytes``."""

    def __init__(self, dataplane: DataPlane, extension: ModelRepositoryExtension, cfg: ServeConfig) -> None:
        self.address = f"{cfg.host}:{cfg.grpc_port}"
        self._dataplane, self._extension = dataplane, extension
        self._max = cfg.max_body_bytes
        self._server: Any = None

    async def start(self, max_threads: int = 4) -> None:
        from grpc import aio

        self._server = aio.server(futures.ThreadPoolExecutor(max_workers=max_threads),
                                  interceptors=(ExceptionToStatusInterceptor(),),
                                  options=[("grpc.max_receive_message_length", self._max),
                                           ("grpc.max_send_message_length", self._max)])
        grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
            FastInferenceServicer(self._dataplane, self._extension), self._server)
        if self._server.add_insecure_port(self.address) == 0:
            raise OSError(f"gRPC: cannot bind {self.address}")
        await self._server.start()
        logger.info("gRPC listening on %s", self.address)
        await self._server.wait_for_termination()

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(grace=2)


class MedoptServer:
    """REST + gRPC for a set of models; ``serve()`` returns after SIGTERM/SIGINT or ``request_stop()``."""

    def __init__(self, models: list[Model], cfg: ServeConfig) -> None:
        self.cfg = cfg
        self.models = models
        repository = ModelRepository()
        for model in models:
            repository.update(model)
        self.dataplane = NumpyDataPlane(model_registry=repository)
        extension = ModelRepositoryExtension(model_registry=repository)
        self.rest = MedoptRESTServer(self.dataplane, extension, cfg)
        self.grpc = MedoptGRPCServer(self.dataplane, extension, cfg) if cfg.enable_grpc else None
        self.load_error: BaseException | None = None

    def request_stop(self) -> None:
        self.rest.request_exit()

    async def _load_models(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            for model in self.models:
                await loop.run_in_executor(None, model.load)
                logger.info("model '%s' ready", model.name)
        except Exception as exc:  # noqa: BLE001 - any load failure must stop the server, not leave it half-up
            logger.error("model failed to load, stopping: %s", exc)
            self.load_error = exc
            self.request_stop()

    def _watch(self, task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error("gRPC server failed: %s", task.exception())
            self.load_error = self.load_error or task.exception()
            self.request_stop()

    async def serve(self) -> None:
        """Listen, load models in the background, and shut everything down when the REST server exits."""
        for sig in (signal.SIGTERM, signal.SIGINT):  # uvicorn re-raises captured signals into these on exit
            signal.signal(sig, lambda *_: self.request_stop())
        tasks = [asyncio.create_task(self._load_models())]
        if self.grpc is not None:
            tasks.append(asyncio.create_task(self.grpc.start()))
            tasks[-1].add_done_callback(self._watch)
        try:
            await self.rest.start()
        finally:
            if self.grpc is not None:
                await self.grpc.stop()
            for task in tasks:
                task.cancel()
            for model in self.models:
                model.stop()
        logger.info("server stopped")


def event_loop_factory() -> Any:
    """uvloop's event loop when installed (a faster loop for every request), else asyncio's default."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def serve_until_stopped(model: Model, cfg: ServeConfig) -> int:
    """Serve one kserve model (predictor or transformer) until SIGTERM/SIGINT; 1 if it failed to load."""
    server = MedoptServer([model], cfg)
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(server.serve())
    if server.load_error is not None:
        logger.error("not serving: %s", server.load_error)
        return 1
    return 0
