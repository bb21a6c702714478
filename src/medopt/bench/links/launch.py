"""``run_proxy``: a link proxy in its own process for the length of a ``with`` block, never left behind.

Why a process: the proxy's timers must not queue behind the server's or the load generator's work in one
interpreter. The child runs in its own session (its group is signalled on exit, by ``processes.stop``), announces
its port on stdout, and writes its counters to ``stats_file`` when it is stopped. Its stderr goes to an unlinked
temporary file, not a pipe, so a chatty child can never block on a full pipe (and a SIGKILL leaves no file behind);
its last line is quoted if the child fails to start.
"""

from __future__ import annotations

import contextlib
import selectors
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

from medopt.bench.links.profiles import LinkError, LinkProfile
from medopt.bench.processes import stop

PROXY_MODULE = "medopt.bench.links.proxy"


def _last_line(err: IO[bytes]) -> str:
    err.seek(0)
    lines = err.read().decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else "no output"


def _wait_port(proc: subprocess.Popen[str], err: IO[bytes], what: str, timeout_s: float) -> int:
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
    how = f"exited ({proc.returncode})" if proc.poll() is not None else f"did not start within {timeout_s:.0f} s"
    stop(proc)
    raise LinkError(f"{what} {how}: {_last_line(err)}")


@contextlib.contextmanager
def spawn_announcing(args: Sequence[str], what: str, *, prefix: Sequence[str] = (),
                     timeout_s: float = 30.0) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """Run ``[*prefix, python, -m, *args]``; yield the process and the port it prints; stop its group on exit."""
    with tempfile.TemporaryFile(prefix="medopt-link-") as err:  # unlinked already: nothing left even on SIGKILL
        proc = subprocess.Popen([*prefix, sys.executable, "-m", *args], stdout=subprocess.PIPE, stderr=err,
                                stdin=subprocess.DEVNULL, text=True, start_new_session=True)
        try:
            yield proc, _wait_port(proc, err, what, timeout_s)
        finally:
            stop(proc)


@contextlib.contextmanager
def run_proxy(profile: LinkProfile, upstream: str, *, seed: int | None = None, stats_file: Path | None = None,
              delay_only: bool = False, handshake: bool = False, listen_host: str = "127.0.0.1",
              netns: str | None = None, timeout_s: float = 30.0) -> Iterator[str]:
    """A proxy over ``profile`` to ``upstream`` (``host:port``); yields the ``host:port`` clients connect to.

    ``netns`` runs it inside that network namespace (kernel mode, with ``delay_only``); ``stats_file`` receives the
    proxy's counters (segments, lost segments per direction) once the block ends.
    """
    args = [PROXY_MODULE, "--profile-json", profile.model_dump_json(), "--upstream", upstream,
            "--listen", f"{listen_host}:0"]
    if seed is not None:
        args += ["--seed", str(seed)]
    if stats_file is not None:
        args += ["--stats-file", str(stats_file)]
    args += ["--delay-only"] * delay_only + ["--handshake"] * handshake
    prefix = ["ip", "netns", "exec", netns] if netns else []
    with spawn_announcing(args, f"link proxy {profile.name!r}", prefix=prefix, timeout_s=timeout_s) as (_, port):
        yield f"{listen_host}:{port}"
