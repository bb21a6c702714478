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
import tempfile
import time
from collections.abc import Iterator, Sequence
from types import FrameType
from typing import IO

from medopt.errors import MedoptError


class ProcessStartError(MedoptError, RuntimeError):
    """A child did not announce its port in time, or exited first; the message carries its last stderr line."""


def _last_line(err: IO[bytes]) -> str:
    err.seek(0)
    lines = err.read().decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else "no output"


def _read_port(proc: subprocess.Popen[str], err: IO[bytes], what: str, timeout_s: float) -> int:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if sel.select(timeout=0.1):
                line = proc.stdout.readline().strip()
                if line.isdigit():
                    return int(line)
                if line == "" and proc.poll() is not None:
                    break
            elif proc.poll() is not None:
                break
    code = proc.poll()
    stop(proc)
    how = f"exited ({code})" if code is not None else f"did not start within {timeout_s:.0f} s"
    raise ProcessStartError(f"{what} {how}: {_last_line(err)}")


class Announcing:
    """A started child that will print its port: start many, then ``wait_port`` each (they start in parallel).

    stderr goes to an unlinked temporary file, not a pipe, so a chatty child never blocks on a full pipe and a
    SIGKILL leaves no file behind; its last line is quoted when the child fails to start.
    """

    def __init__(self, args: Sequence[str], what: str, *, prefix: Sequence[str] = ()) -> None:
        self.what = what
        self.err = tempfile.TemporaryFile(prefix="medopt-child-")
        self.proc = subprocess.Popen([*prefix, sys.executable, "-m", *args], stdout=subprocess.PIPE,
                                     stderr=self.err, stdin=subprocess.DEVNULL, text=True, start_new_session=True)

    def wait_port(self, timeout_s: float = 60.0) -> int:
        return _read_port(self.proc, self.err, self.what, timeout_s)

    def stop(self) -> None:
        stop(self.proc)
        self.err.close()


@contextlib.contextmanager
def spawn_announcing(args: Sequence[str], what: str, *, prefix: Sequence[str] = (), timeout_s: float = 60.0
                     ) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """Run ``[*prefix, python, -m, *args]``; yield the process and the port it prints; stop its group on exit."""
    started = Announcing(args, what, prefix=prefix)
    try:
        yield started.proc, started.wait_port(timeout_s)
    finally:
        started.stop()


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


class _Terminated(BaseException):
    """SIGTERM arrived; raised so ``finally`` blocks remove every child (like KeyboardInterrupt for SIGINT)."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise _Terminated(f"signal {signum}")


@contextlib.contextmanager
def terminate_on_sigterm() -> Iterator[None]:
    """Within the block, SIGTERM unwinds the stack like Ctrl+C does, so cleanup code runs (main thread only:
    Python delivers signals there; elsewhere the block runs unchanged)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
