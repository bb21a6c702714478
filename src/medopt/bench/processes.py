"""Child processes of a bench run (placement nodes, link proxies): started, waited for, always removed.

Why one helper: a benchmark that leaves a server or proxy running after Ctrl+C or a crash poisons the next run's
numbers. Every child is started in its own session (so its whole group can be signalled), announces its port on
stdout's first line, and is killed when the ``with`` block ends for any reason; an ``ExitStack`` of them is closed by
the caller's ``finally`` and by SIGTERM, which ``terminate_on_sigterm`` turns into an exception.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from types import FrameType

from medopt.errors import MedoptError


class ProcessStartError(MedoptError, RuntimeError):
    """A child did not announce its port in time, or exited first; the message carries its last stderr line."""


def _read_port(proc: subprocess.Popen[str], what: str, timeout_s: float) -> int:
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if sel.select(timeout=0.2):
            line = proc.stdout.readline().strip()
            if line.isdigit():
                return int(line)
            if line == "" and proc.poll() is not None:
                break
        elif proc.poll() is not None:
            break
    proc.kill()
    _, err = proc.communicate(timeout=10)
    last = (err or "").strip().splitlines()
    raise ProcessStartError(f"{what} did not start within {timeout_s:.0f} s: {last[-1] if last else 'no output'}")


@contextlib.contextmanager
def child(args: Sequence[str], what: str, *, timeout_s: float = 60.0,
          env: dict[str, str] | None = None) -> Iterator[int]:
    """Run ``python -m <args>`` and yield the port it prints; the process group is killed on exit."""
    proc = subprocess.Popen([sys.executable, "-m", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, env={**os.environ, **(env or {})})
    try:
        yield _read_port(proc, what, timeout_s)
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM the child's group, SIGKILL after 5 s; never raises for an already-dead child."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


class Terminated(BaseException):
    """SIGTERM arrived; raised so ``finally`` blocks remove every child (like KeyboardInterrupt for SIGINT)."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated(f"signal {signum}")


@contextlib.contextmanager
def terminate_on_sigterm() -> Iterator[None]:
    """Within the block, SIGTERM unwinds the stack like Ctrl+C does, so cleanup code runs."""
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
