"""The router in front of the replicas: least-outstanding spreading, a bounded buffer, and the metrics it scrapes.

Why: it plays Knative's activator and queue-proxy together. Requests go to the ready replica with the fewest in
flight (below ``containerConcurrency`` when that is set); while none can take one — no replica is ready yet, or all
are full — the request waits in a FIFO buffer, so the first request after scale-from-zero is held, not failed. The
buffer is bounded: when it is full the router answers 503 with the reason at once and never hangs. The concurrency
it reports per sample is time-weighted (in flight at replicas + buffered), as Knative's scrapes average it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientConnectorError, ClientError, ClientSession, ClientTimeout, TCPConnector, web

from medopt.bench.scaling.controller import Sample

_HOP_HEADERS = {"content-type", "inference-header-content-length"}


@dataclass
class Backend:
    """One replica as the router sees it."""

    name: str
    url: str
    outstanding: int = 0
    draining: bool = False
    served: int = 0
    failed: int = 0


@dataclass
class _Meter:
    """Time-weighted count of requests in the revision, and arrivals, since the last sample."""

    clock: Any = time.monotonic
    in_revision: int = 0
    area: float = 0.0
    arrivals: int = 0
    since: float = field(default=0.0)

    def __post_init__(self) -> None:
        self.since = self.last = self.clock()

    def change(self, delta: int) -> None:
        now = self.clock()
        self.area += self.in_revision * (now - self.last)
        self.last = now
        self.in_revision += delta

    def take(self) -> tuple[float, float, float]:
        """(average concurrency, arrivals per second, seconds covered) since the previous take; resets."""
        self.change(0)
        span = max(self.last - self.since, 1e-9)
        result = (self.area / span, self.arrivals / span, span)
        self.area, self.arrivals, self.since = 0.0, 0, self.last
        return result


class Router:
    """Routes ``POST`` requests to backends; see the module docstring."""

    def __init__(self, *, container_concurrency: int = 0, queue_limit: int = 256, timeout_s: float = 10.0) -> None:
        self.cc = container_concurrency
        self.queue_limit = queue_limit
        self.timeout_s = timeout_s
        self.backends: dict[str, Backend] = {}
        self.waiting: deque[asyncio.Future[Backend]] = deque()
        self.meter = _Meter()
        self.rejected = 0
        self.ejected: list[str] = []
        self.backend_ms: list[float] = []  # per answered request: dispatch to response, the replica slot's busy time
        self.session: ClientSession | None = None
        self.on_buffered: Any = None

    # -- backends -------------------------------------------------------------------------------------------
    def add(self, name: str, url: str) -> None:
        """A replica became ready: it takes buffered requests first."""
        self.backends[name] = Backend(name, url)
        self._dispatch()

    def drain(self, name: str) -> Backend | None:
        """Stop sending to ``name``; its in-flight requests finish."""
        backend = self.backends.get(name)
        if backend is not None:
            backend.draining = True
        return backend

    def remove(self, name: str) -> None:
        self.backends.pop(name, None)

    def ready(self) -> int:
        return sum(1 for b in self.backends.values() if not b.draining)

    def queued(self) -> int:
        return len(self.waiting)

    def sample(self, at: float, cpu: float = 0.0) -> Sample:
        concurrency, rps, _ = self.meter.take()
        return Sample(at=at, concurrency=concurrency, rps=rps, ready=self.ready(), cpu=cpu)

    # -- routing --------------------------------------------------------------------------------------------
    def _pick(self) -> Backend | None:
        best: Backend | None = None
        for b in self.backends.values():
            if b.draining or (self.cc and b.outstanding >= self.cc):
                continue
            if best is None or b.outstanding < best.outstanding:
                best = b
        return best

    def _dispatch(self) -> None:
        while self.waiting:
            if self.waiting[0].done():
                self.waiting.popleft()
                continue
            backend = self._pick()
            if backend is None:
                return
            backend.outstanding += 1
            self.waiting.popleft().set_result(backend)

    async def _acquire(self) -> Backend | None:
        """A backend with a slot reserved, or None when the buffer is full."""
        backend = self._pick() if not self.waiting else None
        if backend is not None:
            backend.outstanding += 1
            return backend
        if len(self.waiting) >= self.queue_limit:  # count only live waiters: timed-out ones may still sit in line
            self.waiting = deque(f for f in self.waiting if not f.done())
            if len(self.waiting) >= self.queue_limit:
                return None
        fut: asyncio.Future[Backend] = asyncio.get_running_loop().create_future()
        self.waiting.append(fut)
        if self.on_buffered is not None:
            self.on_buffered()
        try:
            return await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():  # a slot was reserved just before the timeout cancelled us
                self._release(fut.result())
            raise

    def _release(self, backend: Backend) -> None:
        backend.outstanding -= 1
        self._dispatch()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.meter.arrivals += 1
        body = await request.read()
        self.meter.change(+1)
        try:
            return await asyncio.wait_for(self._forward(request, body), self.timeout_s)
        except TimeoutError:
            return web.Response(status=504, text=f"no answer within the router's {self.timeout_s:g} s timeout")
        finally:
            self.meter.change(-1)

    async def _forward(self, request: web.Request, body: bytes) -> web.StreamResponse:
        """Send to a backend; a refused connection ejects that backend and tries another (the request never
        reached it, so this is safe), a connection lost mid-request ejects it and answers 502."""
        headers = {k: v for k, v in request.headers.items() if k.lower() in _HOP_HEADERS}
        while True:
            backend = await self._acquire()
            if backend is None:
                self.rejected += 1
                return web.Response(status=503, text=f"router buffer full ({self.queue_limit} requests waiting for "
                                                     "a replica)")
            try:
                return await self._send(backend, request.path_qs, body, headers)
            except ClientConnectorError:
                self._eject(backend)
            except (ClientError, ConnectionError) as exc:
                self._eject(backend)
                return web.Response(status=502, text=f"replica {backend.name} failed: {type(exc).__name__}")
            finally:
                self._release(backend)

    async def _send(self, backend: Backend, path: str, body: bytes, headers: dict[str, str]) -> web.Response:
        assert self.session is not None
        start = time.perf_counter()
        async with self.session.post(backend.url + path, data=body, headers=headers) as resp:
            payload = await resp.read()
            out_headers = {k: v for k, v in resp.headers.items() if k.lower() in _HOP_HEADERS}
            backend.served += 1
            if resp.status == 200:
                self.backend_ms.append((time.perf_counter() - start) * 1000.0)
            return web.Response(status=resp.status, body=payload, headers=out_headers)

    def _eject(self, backend: Backend) -> None:
        """Stop routing to a backend whose connection failed (its process has most likely died)."""
        backend.failed += 1
        self.ejected.append(backend.name)
        if self.backends.get(backend.name) is backend:
            del self.backends[backend.name]

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[web.AppRunner, int]:
        """Listen on ``host:port`` (0: any free port); returns the runner and the bound port."""
        self.session = ClientSession(connector=TCPConnector(limit=0), timeout=ClientTimeout(total=None))
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/{tail:.*}", self.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        sock = site._server.sockets[0]  # type: ignore[union-attr]
        return runner, int(sock.getsockname()[1])

    async def close(self, runner: web.AppRunner) -> None:
        for fut in self.waiting:
            if not fut.done():
                fut.cancel()
        await runner.cleanup()
        if self.session is not None:
            await self.session.close()
