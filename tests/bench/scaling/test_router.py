"""The router alone, against in-process backends with a known service time: spreading, buffering, 503, timeouts."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiohttp import web

from medopt.bench.scaling.router import Router


async def _backend(service_s: float, seen: list[str], name: str) -> tuple[web.AppRunner, str]:
    async def infer(request: web.Request) -> web.Response:
        await request.read()
        seen.append(name)
        await asyncio.sleep(service_s)
        return web.Response(body=b"ok-" + name.encode(), content_type="application/octet-stream")

    app = web.Application()
    app.router.add_post("/{tail:.*}", infer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]


async def _post(session: aiohttp.ClientSession, port: int) -> tuple[int, str]:
    async with session.post(f"http://127.0.0.1:{port}/v2/models/m/infer", data=b"x") as resp:
        return resp.status, await resp.text()


def _run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_least_outstanding_spreads_concurrent_requests_evenly() -> None:
    async def go() -> list[str]:
        seen: list[str] = []
        router = Router()
        runner, port = await router.start()
        backends = [await _backend(0.2, seen, f"b{i}") for i in range(3)]
        for i, (_, url) in enumerate(backends):
            router.add(f"b{i}", url)
        async with aiohttp.ClientSession() as s:
            results = await asyncio.gather(*(_post(s, port) for _ in range(6)))
        assert all(code == 200 for code, _ in results)
        await router.close(runner)
        for r, _ in backends:
            await r.cleanup()
        return seen

    seen = _run(go())
    assert sorted(seen.count(n) for n in ("b0", "b1", "b2")) == [2, 2, 2]


def test_requests_wait_while_no_replica_is_ready_then_succeed() -> None:
    async def go() -> tuple[list[tuple[int, str]], int]:
        seen: list[str] = []
        router = Router()
        runner, port = await router.start()
        backend, url = await _backend(0.01, seen, "late")
        async with aiohttp.ClientSession() as s:
            pending = [asyncio.create_task(_post(s, port)) for _ in range(3)]
            await asyncio.sleep(0.3)
            queued = router.queued()
            router.add("late", url)
            results = await asyncio.gather(*pending)
        await router.close(runner)
        await backend.cleanup()
        return results, queued

    results, queued = _run(go())
    assert queued == 3
    assert [code for code, _ in results] == [200, 200, 200]


def test_full_buffer_answers_503_with_reason_at_once() -> None:
    async def go() -> list[tuple[int, str]]:
        router = Router(queue_limit=2)
        runner, port = await router.start()
        async with aiohttp.ClientSession() as s:
            waiting = [asyncio.create_task(_post(s, port)) for _ in range(2)]
            await asyncio.sleep(0.2)
            rejected = await asyncio.wait_for(_post(s, port), 2)
            for task in waiting:
                task.cancel()
        await router.close(runner)
        return [rejected]

    [(code, text)] = _run(go())
    assert code == 503
    assert "buffer full" in text and "2 requests" in text


def test_request_that_no_replica_takes_in_time_gets_504_not_a_hang() -> None:
    async def go() -> tuple[int, str]:
        router = Router(timeout_s=0.3)
        runner, port = await router.start()
        async with aiohttp.ClientSession() as s:
            result = await asyncio.wait_for(_post(s, port), 5)
        assert router.queued() == 0 or all(f.done() for f in router.waiting)
        await router.close(runner)
        return result

    code, text = _run(go())
    assert code == 504 and "0.3 s" in text


def test_container_concurrency_caps_in_flight_per_replica_and_buffers_the_rest() -> None:
    async def go() -> tuple[int, list[str]]:
        seen: list[str] = []
        router = Router(container_concurrency=1)
        runner, port = await router.start()
        backend, url = await _backend(0.2, seen, "one")
        router.add("one", url)
        async with aiohttp.ClientSession() as s:
            tasks = [asyncio.create_task(_post(s, port)) for _ in range(3)]
            await asyncio.sleep(0.1)
            in_flight = router.backends["one"].outstanding
            queued = router.queued()
            await asyncio.gather(*tasks)
        await router.close(runner)
        await backend.cleanup()
        return in_flight * 10 + queued, seen

    code, seen = _run(go())
    assert code == 12  # one in flight, two buffered
    assert seen == ["one"] * 3


def test_sample_reports_time_weighted_concurrency_and_arrival_rate() -> None:
    async def go() -> Any:
        seen: list[str] = []
        router = Router()
        runner, port = await router.start()
        backend, url = await _backend(0.5, seen, "b")
        router.add("b", url)
        router.sample(0.0)  # reset the meter
        async with aiohttp.ClientSession() as s:
            await asyncio.gather(*(_post(s, port) for _ in range(4)))
            await asyncio.sleep(0.5)
        sample = router.sample(1.0)
        await router.close(runner)
        await backend.cleanup()
        return sample

    sample = _run(go())
    # 4 requests of 0.5 s each inside a ~1.0 s span: about 2 in the revision on average, 4 arrivals / ~1 s
    assert 1.5 < sample.concurrency < 2.3
    assert 3.0 < sample.rps < 4.5
    assert sample.ready == 1
