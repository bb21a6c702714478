"""A userspace TCP link proxy (asyncio): bytes from a client reach the upstream, and back, as over ``LinkProfile``.

Why userspace: this kernel has no netem, so delay and jitter cannot come from ``tc``; a proxy can emulate a whole
link (delay, jitter, rate, loss as retransmission delay, see ``shaping``) without root. Client -> upstream is the
uplink, upstream -> client the downlink. Run it as its own process (``python -m medopt.bench.links.proxy``, or
``launch.run_proxy``) so it never shares an interpreter, and a GIL, with the server or the load generator.

Connection handling: each accepted client gets its own upstream connection; an upstream that refuses closes the
client at once. A half-close (EOF) travels in order behind the data, in either direction; a reset or error on
either side closes both. Connection setup itself is free unless ``handshake`` is set, which holds the client's
first bytes back by one RTT, as a TCP handshake would.

Each direction of a connection buffers at most ``buffer_bytes`` before it stops reading (backpressure), sized to
hold what the link has in flight, so a fast sender is slowed to the link's rate instead of filling memory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import selectors
import signal
import statistics
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medopt.bench.links.profiles import LinkProfile
from medopt.bench.links.shaping import Shaper, shapers

CHUNK = 65536
EARLY_S = 50e-6  # bytes due this soon are written now rather than after one more timer wake
MAX_LATENESS_S = 0.001  # a later wake means the loop was busy, not the OS slow to wake it: not compensated


@dataclass
class _Chunk:
    data: bytes
    ends: np.ndarray | None  # segment end offsets; None marks EOF
    times: np.ndarray
    pos: int = 0  # segments already written


def buffer_bytes(shaper: Shaper) -> int:
    """Per-direction, per-connection buffer: what the link holds in flight plus a loss stall, within 256 KB..16 MB."""
    if shaper.rate_mbit is None:
        return 4 << 20
    hold_s = 2 * shaper.one_way_s + 2 * shaper.jitter_s + (shaper.rto_s if shaper.loss > 0 else 0.0) + 0.05
    return int(min(16 << 20, max(256 << 10, shaper.rate_mbit * 1e6 / 8 * hold_s + (256 << 10))))


class WakeClock:
    """Timer wakes aimed early by the loop's typical lateness, so a delivery happens when it is due.

    Why: on a busy machine a process woken from a timer runs a few hundred microseconds late (measured here: about
    0.2 ms per wake with both cores loaded), which twice per round trip is 2% of a 20 ms RTT. The lateness of the
    proxy's own wakes is measured and subtracted (a running median); a wake that comes early simply sleeps the rest.
    """

    def __init__(self, window: int = 64) -> None:
        self.samples: deque[float] = deque(maxlen=window)
        self.lateness = 0.0

    async def sleep_until(self, due: float) -> None:
        loop = asyncio.get_running_loop()
        aim = due - self.lateness
        wait = aim - loop.time()
        if wait <= 0:  # already within the usual lateness: plain (short) sleep
            await asyncio.sleep(max(0.0, due - loop.time()))
            return
        await asyncio.sleep(wait)
        self.samples.append(min(loop.time() - aim, MAX_LATENESS_S))
        if len(self.samples) >= 8:
            self.lateness = max(0.0, statistics.median(self.samples))


class _Direction:
    """One direction of one connection: read, schedule, sleep until due, write."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, shaper: Shaper,
                 not_before: float, clock: WakeClock) -> None:
        self.reader, self.writer, self.shaper, self.clock = reader, writer, shaper, clock
        self.after = not_before
        self.queue: deque[_Chunk] = deque()
        self.queued = 0
        self.limit = buffer_bytes(shaper)
        self.ready = asyncio.Event()
        self.room = asyncio.Event()
        self.room.set()

    async def pump_in(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data = await self.reader.read(CHUNK)
            now = loop.time()
            if not data:
                at = max(self.after, now + self.shaper.one_way_s)
                self.queue.append(_Chunk(b"", None, np.array([at])))
                self.ready.set()
                return
            ends, times = self.shaper.schedule(len(data), now, self.after)
            self.after = float(times[-1])
            self.queue.append(_Chunk(data, ends, times))
            self.queued += len(data)
            self.ready.set()
            if self.queued > self.limit:
                self.room.clear()
                await self.room.wait()

    async def pump_out(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self.queue:
                self.ready.clear()
                await self.ready.wait()
                continue
            now = loop.time()
            head = self.queue[0]
            if head.ends is None:  # EOF, in order behind the data
                if head.times[0] > now + EARLY_S:
                    await self.clock.sleep_until(float(head.times[0]))
                    continue
                if self.writer.can_write_eof():
                    self.writer.write_eof()
                return
            parts = self._take_due(now + EARLY_S)
            if not parts:
                await self.clock.sleep_until(float(self.queue[0].times[self.queue[0].pos]))
                continue
            self.writer.writelines(parts)
            await self.writer.drain()

    def _take_due(self, until: float) -> list[bytes]:
        """The bytes due by ``until``, across queued chunks (stopping at EOF)."""
        parts: list[bytes] = []
        while self.queue and self.queue[0].ends is not None:
            c = self.queue[0]
            k = int(np.searchsorted(c.times, until, side="right"))
            if k <= c.pos:
                break
            start = int(c.ends[c.pos - 1]) if c.pos else 0
            end = int(c.ends[k - 1])  # type: ignore[index]
            parts.append(c.data[start:end])
            self.queued -= end - start
            c.pos = k
            if k < len(c.times):
                break
            self.queue.popleft()
        if self.queued <= self.limit:
            self.room.set()
        return parts


class LinkProxy:
    """Listen on ``listen_host:listen_port`` and forward each connection to the upstream over the emulated link."""

    def __init__(self, profile: LinkProfile, upstream_host: str, upstream_port: int,
                 listen_host: str = "127.0.0.1", listen_port: int = 0, *, seed: int | None = None,
                 delay_only: bool = False, handshake: bool = False) -> None:
        self.profile = profile
        self.upstream = (upstream_host, upstream_port)
        self.listen = (listen_host, listen_port)
        self.handshake = handshake
        self.uplink, self.downlink = shapers(profile, seed=seed, shape_rate=not delay_only,
                                             model_loss=not delay_only)
        self.clock = WakeClock()
        self.connections = 0
        self.refused = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """The bound port (after ``start``)."""
        assert self._server is not None, "start() first"
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> int:
        """Bind and start accepting; returns the port."""
        self._server = await asyncio.start_server(self._accept, *self.listen, limit=CHUNK)
        return self.port

    async def stop(self) -> None:
        """Stop accepting and drop every open connection."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def stats(self) -> dict[str, Any]:
        """Connections and per-direction counters (bytes, segments, lost segments)."""
        return {"connections": self.connections, "refused": self.refused, "wake_lateness_ms": self.clock.lateness * 1e3,
                "uplink": self.uplink.counters(), "downlink": self.downlink.counters()}

    async def _accept(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(creader, cwriter)
        finally:
            self._tasks.discard(task)

    async def _serve(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        accepted = asyncio.get_running_loop().time()
        try:
            ureader, uwriter = await asyncio.open_connection(*self.upstream, limit=CHUNK)
        except OSError:
            self.refused += 1
            cwriter.transport.abort()
            return
        self.connections += 1
        # handshake: the client could send only after SYN/SYN-ACK (one RTT), so its bytes arrive 1.5 RTT after connect
        not_before = accepted + 3 * self.uplink.one_way_s if self.handshake else 0.0
        up = _Direction(creader, uwriter, self.uplink, not_before, self.clock)
        down = _Direction(ureader, cwriter, self.downlink, 0.0, self.clock)
        try:
            async with asyncio.TaskGroup() as tg:
                for coro in (up.pump_in(), up.pump_out(), down.pump_in(), down.pump_out()):
                    tg.create_task(coro)
        except* (OSError, ConnectionError):
            for w in (cwriter, uwriter):  # one side failed: the other must not wait for it
                w.transport.abort()
        finally:
            for w in (cwriter, uwriter):
                w.close()
            for w in (cwriter, uwriter):
                with contextlib.suppress(OSError, ConnectionError, asyncio.CancelledError):
                    await w.wait_closed()


def precise_loop() -> asyncio.AbstractEventLoop:
    """An event loop on ``select()``: its timeout has microsecond resolution, where epoll's and poll's round up
    to a whole millisecond (+0.5 ms per delivery on average, measured here). ``select`` caps a process at 1024
    descriptors: about 500 proxied connections, ample for a benchmark."""
    return asyncio.SelectorEventLoop(selectors.SelectSelector())


def _write_stats(path: Path, stats: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(stats))
    os.replace(tmp, path)


async def _serve_forever(proxy: LinkProxy, stats_file: Path | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    port = await proxy.start()
    print(port, flush=True)
    await stop.wait()
    await proxy.stop()
    if stats_file is not None:
        _write_stats(stats_file, proxy.stats())


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected host:port, got {text!r}")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    """``python -m medopt.bench.links.proxy --profile-json J --upstream H:P``: print the bound port, serve until
    SIGTERM, then write ``--stats-file`` if given."""
    parser = argparse.ArgumentParser(prog="python -m medopt.bench.links.proxy", description=__doc__.splitlines()[0])
    parser.add_argument("--profile-json", required=True, help="LinkProfile as JSON")
    parser.add_argument("--upstream", required=True, type=_host_port, help="host:port to forward to")
    parser.add_argument("--listen", default="127.0.0.1:0", type=_host_port, help="host:port to listen on")
    parser.add_argument("--seed", type=int, default=None, help="seed of the jitter and loss draws")
    parser.add_argument("--delay-only", action="store_true", help="delay and jitter only (kernel mode)")
    parser.add_argument("--handshake", action="store_true", help="connection setup costs one RTT")
    parser.add_argument("--stats-file", type=Path, default=None, help="write counters here on exit (JSON)")
    args = parser.parse_args(argv)
    profile = LinkProfile(**json.loads(args.profile_json))
    proxy = LinkProxy(profile, *args.upstream, *args.listen, seed=args.seed, delay_only=args.delay_only,
                      handshake=args.handshake)
    with asyncio.Runner(loop_factory=precise_loop) as runner:
        runner.run(_serve_forever(proxy, args.stats_file))
    return 0


if __name__ == "__main__":
    sys.exit(main())
