"""A V2-shaped HTTP endpoint with a fixed serial service time and an optional stall, for load-generator tests.

Why not the model server: these tests check the *generator* (rates, coordinated omission, errors) and need a server
whose capacity and stall are known exactly. Run: ``python slow_server.py SERVICE_MS STALL_AT_S STALL_MS``; it prints
its port on stdout. The stall blocks the event loop (like a GC pause) once, STALL_AT_S after the first request.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time

from aiohttp import web


def make_app(service_s: float, stall_at_s: float, stall_s: float) -> web.Application:
    lock = asyncio.Lock()
    state = {"first": None, "stalled": stall_s <= 0}

    async def infer(request: web.Request) -> web.Response:
        await request.read()
        now = time.perf_counter()
        if state["first"] is None:
            state["first"] = now
        if not state["stalled"] and now - state["first"] >= stall_at_s:
            state["stalled"] = True
            time.sleep(stall_s)
        async with lock:
            await asyncio.sleep(service_s)
        return web.json_response({"outputs": []})

    app = web.Application()
    app.router.add_post("/v2/models/{name}/infer", infer)
    return app


async def main() -> None:
    service_ms, stall_at_s, stall_ms = (float(a) for a in sys.argv[1:4])
    runner = web.AppRunner(make_app(service_ms / 1000, stall_at_s, stall_ms / 1000))
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    print(sock.getsockname()[1], flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
