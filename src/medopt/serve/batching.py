"""Dynamic batching: concurrent requests are merged into one inference, and the results split back.

Why adaptive waiting: a fixed wait of ``max_latency_ms`` for more rows would tax every request of a lone client. The
batcher instead waits only while traffic is batching (the previous batch merged more than one request); under load the
queue also fills on its own while ``workers`` batches are running, so merged batches form without any wait at all.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

logger = logging.getLogger(__name__)

Runner = Callable[[np.ndarray], np.ndarray]
BatchHook = Callable[[int, int], None]


@dataclass
class _Item:
    x: np.ndarray
    future: asyncio.Future[np.ndarray] = field(repr=False)

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

    ``workers`` batches may run at once on a private thread pool; a request larger than ``max_batch_size`` runs alone.
    ``batches`` and ``requests`` count what happened (tests and metrics read them).
    """

    def __init__(self, runner: Runner, *, max_batch_size: int, max_latency_ms: float, workers: int = 1,
                 hook: BatchHook | None = None) -> None:
        if max_batch_size < 1 or workers < 1 or max_latency_ms < 0:
            raise ValueError("Batcher: max_batch_size and workers must be >= 1, max_latency_ms >= 0")
        self._runner = runner
        self._max_rows = max_batch_size
        self._max_wait = max_latency_ms / 1000.0
        self._workers = workers
        self._hook = hook
        self._queue: collections.deque[_Item] = collections.deque()
        self._arrived: asyncio.Event | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="medopt-infer")
        self._last_merged = 1
        self.batches = 0
        self.requests = 0

    async def submit(self, x: np.ndarray) -> np.ndarray:
        """Queue one (N, ...) batch and wait for its (N, ...) output."""
        if self._loop_task is None or self._loop_task.done():
            self._arrived = asyncio.Event()
            self._loop_task = asyncio.get_running_loop().create_task(self._collect_forever())
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._queue.append(_Item(x, future))
        assert self._arrived is not None
        self._arrived.set()
        return await future

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
        slots = asyncio.Semaphore(self._workers)
        while True:
            first = await self._next(None)
            assert first is not None
            await slots.acquire()
            batch = await self._gather(first)
            self._last_merged = len(batch)
            task = asyncio.get_running_loop().create_task(self._run(batch, slots))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, batch: list[_Item], slots: asyncio.Semaphore) -> None:
        try:
            x = batch[0].x if len(batch) == 1 else np.concatenate([it.x for it in batch])
            self.batches += 1
            self.requests += len(batch)
            if self._hook is not None:
                self._hook(len(batch), int(x.shape[0]))
            out = await asyncio.get_running_loop().run_in_executor(self._executor, self._runner, x)
        except Exception as exc:  # noqa: BLE001 - delivered to every waiting request instead of lost in a task
            for it in batch:
                if not it.future.done():
                    it.future.set_exception(exc)
            return
        finally:
            slots.release()
        start = 0
        for it in batch:
            if not it.future.done():
                it.future.set_result(out[start : start + it.rows])
            start += it.rows

    def close(self) -> None:
        """Stop collecting, fail queued requests, and shut the thread pool down."""
        if self._loop_task is not None:
            self._loop_task.cancel()
        while self._queue:
            item = self._queue.popleft()
            if not item.future.done():
                item.future.set_exception(RuntimeError("server is shutting down"))
        self._executor.shutdown(wait=False, cancel_futures=True)
