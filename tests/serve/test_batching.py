"""Dynamic batching: concurrent requests merge up to max_batch_size, each caller gets exactly its own rows."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from medopt.serve.batching import Batcher


class Recorder:
    """A runner that records batch sizes and returns row sums, so misrouted rows are detectable."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.sizes: list[int] = []
        self.gate = gate

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.gate is not None:
            self.gate.wait(5)
        self.sizes.append(x.shape[0])
        return x.reshape(x.shape[0], -1).sum(axis=1, keepdims=True)


async def _submit_all(batcher: Batcher, arrays: list[np.ndarray]) -> list[np.ndarray]:
    return await asyncio.gather(*(batcher.submit(a) for a in arrays))


def test_concurrent_requests_merge_and_split_back() -> None:
    runner = Recorder()
    batcher = Batcher(runner, max_batch_size=4, max_latency_ms=0)
    arrays = [np.full((1, 2), i, dtype=np.float32) for i in range(10)]

    async def main() -> list[np.ndarray]:
        first = await batcher.submit(arrays[0])  # lone request: runs alone, no waiting
        return [first, *await _submit_all(batcher, arrays[1:])]

    results = asyncio.run(main())
    batcher.close()
    assert [float(r[0, 0]) for r in results] == [2.0 * i for i in range(10)]
    assert runner.sizes[0] == 1
    assert sum(runner.sizes) == 10 and max(runner.sizes) == 4 and batcher.batches == len(runner.sizes) < 10


def test_queue_fills_while_a_batch_runs() -> None:
    gate = threading.Event()
    runner = Recorder(gate)
    batcher = Batcher(runner, max_batch_size=16, max_latency_ms=0)

    async def main() -> list[np.ndarray]:
        first = asyncio.ensure_future(batcher.submit(np.ones((1, 1), dtype=np.float32)))
        await asyncio.sleep(0.05)
        rest = [asyncio.ensure_future(batcher.submit(np.ones((1, 1), dtype=np.float32))) for _ in range(6)]
        await asyncio.sleep(0.05)
        gate.set()
        return await asyncio.gather(first, *rest)

    asyncio.run(main())
    batcher.close()
    assert runner.sizes == [1, 6]


def test_oversized_request_runs_alone_and_errors_reach_every_caller() -> None:
    runner = Recorder()
    batcher = Batcher(runner, max_batch_size=2, max_latency_ms=0)
    out = asyncio.run(batcher.submit(np.ones((5, 1), dtype=np.float32)))
    assert out.shape == (5, 1) and runner.sizes == [5]

    def broken(x: np.ndarray) -> np.ndarray:
        raise RuntimeError("kernel failed")

    failing = Batcher(broken, max_batch_size=4, max_latency_ms=0)

    async def main() -> list[object]:
        return await asyncio.gather(*(failing.submit(np.ones((1, 1), dtype=np.float32)) for _ in range(3)),
                                    return_exceptions=True)

    results = asyncio.run(main())
    assert all(isinstance(r, RuntimeError) and "kernel failed" in str(r) for r in results)
    batcher.close()
    failing.close()


def test_invalid_settings_raise() -> None:
    with pytest.raises(ValueError, match="max_batch_size"):
        Batcher(Recorder(), max_batch_size=0, max_latency_ms=1)


def test_lone_request_gets_timed_threaded_and_inline() -> None:
    from medopt.serve.timing import RequestTiming

    for inline in (False, True):
        runner = Recorder()
        batcher = Batcher(runner, max_batch_size=4, max_latency_ms=0, inline=inline)

        async def main() -> tuple[np.ndarray, RequestTiming]:
            timing = RequestTiming()
            return await batcher.submit(np.full((1, 2), 3, dtype=np.float32), timing), timing

        out, timing = asyncio.run(main())
        batcher.close()
        assert float(out[0, 0]) == 6.0 and runner.sizes == [1] and batcher.batches == batcher.requests == 1
        assert {"queue", "infer", "resume"} <= set(timing.ns) and timing.rows == 1


def test_inline_batcher_merges_and_splits_like_the_threaded_one() -> None:
    runner = Recorder()
    batcher = Batcher(runner, max_batch_size=4, max_latency_ms=0, inline=True)
    arrays = [np.full((1, 2), i, dtype=np.float32) for i in range(9)]

    async def main() -> list[np.ndarray]:
        return list(await _submit_all(batcher, arrays))

    results = asyncio.run(main())
    batcher.close()
    assert [float(r[0, 0]) for r in results] == [2.0 * i for i in range(9)]
    assert sum(runner.sizes) == 9 and max(runner.sizes) == 4


def test_inline_needs_one_worker_and_closed_batcher_refuses() -> None:
    with pytest.raises(ValueError, match="inline"):
        Batcher(Recorder(), max_batch_size=4, max_latency_ms=0, workers=2, inline=True)
    batcher = Batcher(Recorder(), max_batch_size=4, max_latency_ms=0)
    batcher.close()
    with pytest.raises(RuntimeError, match="shutting down"):
        asyncio.run(batcher.submit(np.ones((1, 1), dtype=np.float32)))
