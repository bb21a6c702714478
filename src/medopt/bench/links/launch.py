"""``run_proxy``: a link proxy in its own process for the length of a ``with`` block, never left behind.

Why a process: the proxy's timers must not queue behind the server's or the load generator's work in one
interpreter. The child runs in its own session (its group is signalled on exit, by ``processes.stop``), announces
its port on stdout, and writes its counters to ``stats_file`` when it is stopped. Its stderr goes to an unlinked
temporary file, not a pipe, so a chatty child can never block on a full pipe (and a SIGKILL leaves no file behind);
its last line is quoted if the child fails to start.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from medopt.bench.links.profiles import LinkError, LinkProfile
from medopt.bench.processes import ProcessStartError, spawn_announcing

PROXY_MODULE = "medopt.bench.links.proxy"


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
    with contextlib.ExitStack() as stack:
        try:
            _, port = stack.enter_context(spawn_announcing(args, f"link proxy {profile.name!r}", prefix=prefix,
                                                           timeout_s=timeout_s))
        except ProcessStartError as exc:
            raise LinkError(str(exc)) from None
        yield f"{listen_host}:{port}"
