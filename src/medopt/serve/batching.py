"""Dynamic batching: concurrent requests are merged into one inference, and the results split back.

Why adaptive waiting: a fixed wait of ``max_latency_ms`` for more rows would tax every request of a lone client. The
batcher instead waits only while traffic is batching (the previous batch merged more than one request); under load the
queue also fills on its own while ``workers`` batches are running, so merged batches form without any wait at all.

Hand-offs are kept to the minimum: a lone request while the batcher is idle (and the last batch merged nothing) goes
from its handler straight to the inference thread; a batch goes from the collecting task straight to the inference
thread (no task per batch) and each result straight back to its request's future, one wake-up of the event loop per
batch. With
``inline`` the runtime is called on the event-loop thread itself (no thread hand-off at all); that suits one worker
whose runtime uses every core anyway, at the price of the loop not reading new requests while a batch runs. A
request's ``timing`` (``serve/timing.py``) gets its queue, infer and resume stages from here.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from medopt.serve.timing import RequestTiming

logger = logging.getLogger(__name__)

Runner = Callable[[np.ndarray], np.ndarray]
BatchHook = Callable[[int, int], None]


@dataclass
class _Item:
    x: np.ndarray
    future: asyncio.Future[np.ndarray] = field(repr=False)
    timing: RequestTiming | None = field(default=None, repr=False)

    @property
    def rows(self) -> int:
        return int(self.x.shape[0])


@functools.cache
def _metrics() -> tuple[object, object]:
    """Prometheus batch metrics, created on first use (never at import) and shared by all batchers of a process."""
    from prometheus_client import Counter, Histogram

    batches = Counter("medopt_serve_batches", "Inference batches run", ["model"])
    rows = Histogram("medopt_serve_batch_rows", "Rows per inference batch", ["model"],
                     buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
    return batches, rows


def prometheus_hook(model_name: str) -> BatchHook:
    """A batch hook that counts batches and their sizes on the server's /metrics."""
    batches, rows = _metrics()

    def hook(n_requests: int, n_rows: int) -> None:
        batches.labels(model=model_name).inc()  # type: ignore[attr-defined]
        rows.labels(model=model_name).observe(n_rows)  # type: ignore[attr-defined]

    return hook


class Batcher:
    """Merge concurrent ``submit`` calls up to ``max_batch_size`` rows, waiting at most ``max_latency_ms`` for more.

    ``workers`` batches may run at once on a private thread pool (``inline``: one at a time, on the event-loop
    thread); a request larger than ``max_batch_size`` runs alone. ``batches`` and ``requests`` count what happened
    (tests and metrics read them).
    """

    def __init__(self, runner: Runner, *, max_batch_size: int, max_latency_ms: float, workers: int = 1,
                 hook: BatchHook | None = None, inline: bool = False) -> None:
        if max_batch_size < 1 or workers < 1 or max_latency_ms < 0:
            raise ValueError("Batcher: max_batch_size and workers must be >= 1, max_latency_ms >= 0")
        if inline and workers != 1:
            raise ValueError("Batcher: inline inference runs one batch at a time (workers=1)")
        self.inline = inline
        self._runner = runner
        self._max_rows = max_batch_size
        self._max_wait = max_latency_ms / 1000.0
        self._workers = workers
        self._hook = hook
        self._queue: collections.deque[_Item] = collections.deque()
        self._arrived: asyncio.Event | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._slots: asyncio.Semaphore | None = None
        self._active = 0  # batches running now
        self._closed = False
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="medopt-infer")
        self._last_merged = 1
        self.batches = 0
        self.requests = 0

    async def submit(self, x: np.ndarray, timing: RequestTiming | None = None) -> np.ndarray:
        """Queue one (N, ...) batch and wait for its (N, ...) output; ``timing`` gets queue/infer/resume."""
        if self._closed:
            raise RuntimeError("server is shutting down")
        loop = asyncio.get_running_loop()
        if self._loop_task is None or self._loop_task.done():
            self._arrived = asyncio.Event()
            self._slots = asyncio.Semaphore(self._workers)
            self._loop_task = loop.create_task(self._collect_forever())
        if (not self.inline and not self._queue and self._active == 0 and self._last_merged == 1
                and x.shape[0] <= self._max_rows):
            return await self._alone(x, timing)
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self._queue.append(_Item(x, future, timing))
        assert self._arrived is not None
        self._arrived.set()
        out = await future
        if timing is not None:
            timing.mark("resume")
        return out

    async def _alone(self, x: np.ndarray, timing: RequestTiming | None) -> np.ndarray:
        """A lone request while nothing runs or waits: the collector would run it alone anyway, so hand it to the
        inference thread from here, without the hops to the collecting task and back. Not inline: a request run
        inline here would block the loop before the requests behind it were even queued, so none would ever merge;
        inline batches always go through the collector, which sees everything queued in the same loop turn."""
        assert self._slots is not None
        await self._slots.acquire()  # free: no batch is running, and the collector holds no slot while idle
        self._active += 1
        self.batches += 1
        self.requests += 1
        try:
            if self._hook is not None:
                self._hook(1, int(x.shape[0]))
            out, start_ns, end_ns = await asyncio.get_running_loop().run_in_executor(self._executor, self._timed, x)
        finally:
            self._active -= 1
            self._slots.release()
        if timing is not None:
            timing.set_span("queue", timing.last, start_ns)
            timing.set_span("infer", start_ns, end_ns)
            timing.rows = int(x.shape[0])
            timing.mark("resume")
        return out

    async def _next(self, timeout: float | None) -> _Item | None:
        """The oldest queued item, waiting up to ``timeout`` seconds (None: forever)."""
        assert self._arrived is not None
        while not self._queue:
            self._arrived.clear()
            if timeout is not None and timeout <= 0:
                return None
            try:
                await asyncio.wait_for(self._arrived.wait(), timeout)
            except TimeoutError:
                return None
        return self._queue.popleft()

    async def _gather(self, first: _Item) -> list[_Item]:
        loop = asyncio.get_running_loop()
        batch, rows = [first], first.rows
        deadline = loop.time() + (self._max_wait if self._last_merged > 1 else 0.0)
        while rows < self._max_rows:
            item = await self._next(deadline - loop.time())
            if item is None:
                break
            if rows + item.rows > self._max_rows:
                self._queue.appendleft(item)
                break
            batch.append(item)
            rows += item.rows
        return batch

    async def _collect_forever(self) -> None:
        slots = self._slots
        assert slots is not None
        while True:
            first = await self._next(None)
            assert first is not None
            await slots.acquire()
            batch = await self._gather(first)
            self._last_merged = len(batch)
            self._dispatch(batch, slots)

    def _timed(self, x: np.ndarray) -> tuple[np.ndarray, int, int]:
        start = time.perf_counter_ns()
        out = self._runner(x)
        return out, start, time.perf_counter_ns()

    def _dispatch(self, batch: list[_Item], slots: asyncio.Semaphore) -> None:
        """Start one batch: on the inference thread (results delivered by a done-callback) or, inline, right here."""
        self._active += 1
        try:
            x = batch[0].x if len(batch) == 1 else np.concatenate([it.x for it in batch])
            self.batches += 1
            self.requests += len(batch)
            if self._hook is not None:
                self._hook(len(batch), int(x.shape[0]))
            if self.inline:
                result = self._timed(x)
            else:
                work = asyncio.get_running_loop().run_in_executor(self._executor, self._timed, x)
                work.add_done_callback(functools.partial(self._finished, batch, slots))
                return
        except Exception as exc:  # noqa: BLE001 - delivered to every waiting request instead of lost in a task
            self._release(slots)
            self._fail(batch, exc)
            return
        self._release(slots)
        self._deliver(batch, *result)

    def _release(self, slots: asyncio.Semaphore) -> None:
        self._active -= 1
        slots.release()

    def _finished(self, batch: list[_Item], slots: asyncio.Semaphore, work: asyncio.Future[tuple[np.ndarray, int, int]]
                  ) -> None:
        self._release(slots)
        if work.cancelled():
            self._fail(batch, RuntimeError("server is shutting down"))
        elif work.exception() is not None:
            self._fail(batch, work.exception())  # type: ignore[arg-type]
        else:
            self._deliver(batch, *work.result())

    @staticmethod
    def _fail(batch: list[_Item], exc: BaseException) -> None:
        for it in batch:
            if not it.future.done():
                it.future.set_exception(exc)

    @staticmethod
    def _deliver(batch: list[_Item], out: np.ndarray, start_ns: int, end_ns: int) -> None:
        rows = sum(it.rows for it in batch)
        start = 0
        for it in batch:
            if it.timing is not None:
                it.timing.set_span("queue", it.timing.last, start_ns)
                it.timing.set_span("infer", start_ns, end_ns)
                it.timing.rows = rows
            if not it.future.done():
                it.future.set_result(out[start : start + it.rows])
            start += it.rows

    def close(self) -> None:
        """Stop collecting, fail queued requests, and shut the thread pool down."""
        self._closed = True
        if self._loop_task is not None:
            self._loop_task.cancel()
        while self._queue:
            item = self._queue.popleft()
            if not item.future.done():
                item.future.set_exception(RuntimeError("server is shutting down"))
        self._executor.shutdown(wait=False, cancel_futures=True)
