"""The far end and the near end of a link calibration: a tiny echo/bulk server and the clients that time it.

Why threads and blocking sockets: the probe must add as little of its own delay as it can, and must be able to
create its sockets in another network namespace (kernel mode hands in sockets made there); a thread per connection
is the simplest thing that does both.

Protocol, one command byte first:

* ``P`` + 64-byte messages: each message is echoed back (ping-pong; RTT).
* ``D`` + 8-byte length N: the server sends N bytes, then closes (download; the client times the arrivals).
* ``U`` + 8-byte length N + N bytes: the server times the arrivals and answers with one JSON line (upload).
* UDP: ``count_datagrams`` counts distinct sequence numbers that arrive (loss).
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np

PING_BYTES = 64
_BLOCK = b"\0" * 65536

Connect = Callable[[], socket.socket]


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        part = sock.recv(n - len(buf))
        if not part:
            raise ConnectionError(f"peer closed after {len(buf)} of {n} bytes")
        buf += part
    return bytes(buf)


def _nodelay(sock: socket.socket) -> socket.socket:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def rates(times: list[float], sizes: list[int]) -> dict[str, float]:
    """Goodput from a receive timeline: ``mean_mbit`` over the whole transfer, ``goodput_mbit`` the link's rate.

    Why two: a lost segment stalls the stream for a retransmission timeout, after which the stream catches up, in a
    burst, to where the link's rate has taken it; a stall near the end lengthens the whole transfer, so the mean
    mixes the rate with the loss. Arrivals never run ahead of the rate, so the steepest line from the first arrival
    to any later one that has at least half the bytes is the rate, reached wherever the stream has caught up.
    Without stalls the two agree. The first read only starts the clock (its bytes arrived before it).
    """
    if len(times) < 3:
        return {"mean_mbit": float("nan"), "goodput_mbit": float("nan"), "seconds": 0.0}
    t = np.asarray(times, dtype=float) - times[0]
    b = (np.cumsum(sizes) - sizes[0]).astype(float)
    late = (b >= b[-1] / 2) & (t > 0)
    return {"mean_mbit": float(b[-1] * 8 / t[-1] / 1e6), "goodput_mbit": float(np.max(b[late] / t[late]) * 8 / 1e6),
            "seconds": float(t[-1])}


class ProbeServer:
    """Serve the probe protocol on a listening socket (made by the caller, possibly in another namespace)."""

    def __init__(self, listener: socket.socket) -> None:
        self.listener = listener
        self.listener.listen(64)
        self.port = int(listener.getsockname()[1])
        self._threads: list[threading.Thread] = []
        self._closing = False

    def __enter__(self) -> ProbeServer:
        t = threading.Thread(target=self._accept_loop, name="probe-accept", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing = True
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for t in self._threads:
            t.join(timeout=2)

    def _accept_loop(self) -> None:
        while not self._closing:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            t = threading.Thread(target=self._handle, args=(_nodelay(conn),), name="probe-conn", daemon=True)
            t.start()
            self._threads.append(t)

    def _handle(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError, ConnectionError):
            cmd = conn.recv(1)
            if cmd == b"P":
                while msg := conn.recv(PING_BYTES):
                    if len(msg) < PING_BYTES:
                        msg += _recv_exact(conn, PING_BYTES - len(msg))
                    conn.sendall(msg)
            elif cmd == b"D":
                (n,) = struct.unpack("!Q", _recv_exact(conn, 8))
                while n > 0:
                    k = min(n, len(_BLOCK))
                    conn.sendall(_BLOCK[:k])
                    n -= k
                conn.shutdown(socket.SHUT_WR)
                conn.recv(1)  # wait for the client's close
            elif cmd == b"U":
                (n,) = struct.unpack("!Q", _recv_exact(conn, 8))
                times, sizes = _timeline(conn, n)
                conn.sendall(json.dumps(rates(times, sizes)).encode() + b"\n")


def _timeline(sock: socket.socket, n: int) -> tuple[list[float], list[int]]:
    times: list[float] = []
    sizes: list[int] = []
    got = 0
    buf = bytearray(1 << 20)
    while got < n:
        k = sock.recv_into(buf, min(len(buf), n - got))
        if not k:
            raise ConnectionError(f"peer closed after {got} of {n} bytes")
        times.append(time.perf_counter())
        sizes.append(k)
        got += k
    return times, sizes


def ping_rtts(connect: Connect, count: int, *, concurrency: int = 1) -> list[float]:
    """``count`` round trips of one 64-byte message (milliseconds), spread over ``concurrency`` connections."""
    per = [count // concurrency + (i < count % concurrency) for i in range(concurrency)]

    def one(n: int) -> list[float]:
        out = []
        with _nodelay(connect()) as sock:
            msg = b"x" * PING_BYTES
            sock.sendall(b"P")
            for _ in range(n):
                t0 = time.perf_counter()
                sock.sendall(msg)
                _recv_exact(sock, PING_BYTES)
                out.append((time.perf_counter() - t0) * 1e3)
        return out

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return [x for part in pool.map(one, [n for n in per if n]) for x in part]


def download(connect: Connect, nbytes: int) -> dict[str, float]:
    """Downlink goodput: the server sends ``nbytes``, the client times their arrival."""
    with _nodelay(connect()) as sock:
        sock.sendall(b"D" + struct.pack("!Q", nbytes))
        times, sizes = _timeline(sock, nbytes)
    return rates(times, sizes)


def upload(connect: Connect, nbytes: int) -> dict[str, float]:
    """Uplink goodput: the client sends ``nbytes``, the server times their arrival and reports."""
    with _nodelay(connect()) as sock:
        sock.sendall(b"U" + struct.pack("!Q", nbytes))
        left = nbytes
        while left > 0:
            k = min(left, len(_BLOCK))
            sock.sendall(_BLOCK[:k])
            left -= k
        line = b""
        while not line.endswith(b"\n"):
            part = sock.recv(4096)
            if not part:
                raise ConnectionError("probe server closed before reporting the upload")
            line += part
    return json.loads(line)


@contextlib.contextmanager
def count_datagrams(sock: socket.socket) -> Iterator[set[int]]:
    """Collect the sequence numbers of UDP datagrams arriving on ``sock`` while the block runs (and 0.3 s after)."""
    seen: set[int] = set()
    done = threading.Event()

    def loop() -> None:
        sock.settimeout(0.05)
        while not done.is_set():
            try:
                data = sock.recv(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            if len(data) >= 8:
                seen.add(struct.unpack("!Q", data[:8])[0])

    t = threading.Thread(target=loop, name="probe-udp", daemon=True)
    t.start()
    try:
        yield seen
    finally:
        time.sleep(0.3)
        done.set()
        t.join(timeout=2)


def send_datagrams(sock: socket.socket, to: tuple[str, int], count: int, rate_mbit: float,
                   payload: int = 64) -> None:
    """``count`` numbered datagrams to ``to``, paced to ``rate_mbit`` (counting IP/UDP/Ethernet headers) so the
    link's own queue never drops any: only the loss being measured does."""
    wire_bits = (payload + 8 + 20 + 14) * 8
    gap = wire_bits / (rate_mbit * 1e6)
    pad = b"\0" * (payload - 8)
    start = time.perf_counter()
    for seq in range(count):
        due = start + seq * gap
        delay = due - time.perf_counter()
        if delay > 0.002:
            time.sleep(delay)
        sock.sendto(struct.pack("!Q", seq) + pad, to)
