"""The Ray session around a training run: start a local head when needed, keep Ray's log noise off the screen.

Why: users run `medopt run` on a laptop with no Ray cluster; they should not have to start one, and Ray's own
warnings, tips and progress tables belong in the run log, not between medopt's progress bar and its table.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medopt.errors import MedoptError

logger = logging.getLogger(__name__)
_run_log = logging.getLogger("ray.medopt")  # notes about the Ray session go where Ray's own logs go (the run log)

MAX_SOCKET_PATH = 107
"""Unix socket paths (sun_path) hold at most 107 characters plus the terminating NUL."""
SESSION_SUFFIX_CHARS = 72
"""Longest suffix Ray appends to its temp dir for a socket: '/session_<date>_<time>_<us>_<pid>/sockets/<name>'."""
_OWN_HANDLER = ("ray", "ray._private")  # ray.init clears "ray"'s handlers; "ray._private" covers init itself
RAY_LOGGERS: tuple[str, ...] = ("ray", "ray._private", "ray.train", "ray.tune", "ray.data", "ray.air", "ray.util", "ray.serve")
# Environment Ray reads in the driver and its child processes; set only while a session we started runs.
_QUIET_ENV: dict[str, str] = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AIR_NEW_OUTPUT": "0",
    "RAY_TRAIN_ENABLE_PRINT_PATCH": "0",
    "RAY_DEDUP_LOGS": "0",
}


class RayStartError(MedoptError, RuntimeError):
    """The local Ray head could not be started (or the configured cluster reached)."""


def ray_temp_dir(run_dir: Path) -> Path:
    """``<run_dir>/ray`` when Ray's socket paths under it stay short enough, else ``/tmp/medopt-ray-<hash>``."""
    wanted = Path(run_dir).resolve() / "ray"
    if len(str(wanted)) + SESSION_SUFFIX_CHARS <= MAX_SOCKET_PATH:
        return wanted
    digest = hashlib.sha256(str(wanted).encode()).hexdigest()[:10]
    short = Path("/tmp") / f"medopt-ray-{digest}"
    _run_log.info("run folder path too long for Ray's unix sockets; Ray temp dir is %s (not %s)", short, wanted)
    return short


class CurrentStderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at emit time, so a run that captures stderr captures Ray's logs too."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:  # a logging handler must never raise into Ray's code
            self.handleError(record)


@contextlib.contextmanager
def routed_ray_logs(level: int = logging.INFO) -> Iterator[logging.Handler]:
    """Send Ray's Python loggers and warnings to the run log (the current ``sys.stderr``), not the terminal.

    Ray attaches its own handlers to the ``ray`` loggers at import time, bound to the real terminal; they are
    swapped for one that follows ``sys.stderr`` (redirected into the run log by the pipeline runner) and restored
    afterwards. Python warnings raised meanwhile (deprecations, tips) are logged the same way. Yields the handler
    (``ray.init`` clears the ``ray`` logger's handlers, so the caller re-attaches it after init).
    """
    handler = CurrentStderrHandler(level)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    saved = []
    for name in RAY_LOGGERS:
        log = logging.getLogger(name)
        saved.append((log, list(log.handlers), log.propagate, log.level))
        log.handlers = [handler] if name in _OWN_HANDLER else []
        log.propagate = name not in _OWN_HANDLER
        log.setLevel(level if name in _OWN_HANDLER else logging.NOTSET)
    warn_log = logging.getLogger("ray.warnings")

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None,
             line: str | None = None) -> None:
        warn_log.warning("%s: %s (%s:%s)", category.__name__, message, filename, lineno)

    try:
        with warnings.catch_warnings():
            warnings.showwarning = show
            yield handler
    finally:
        for log, handlers, propagate, lvl in saved:
            log.handlers, log.propagate = handlers, propagate
            log.setLevel(lvl)


@contextlib.contextmanager
def _quiet_env() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in _QUIET_ENV}
    os.environ.update({k: v for k, v in _QUIET_ENV.items() if saved[k] is None})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)


@contextlib.contextmanager
def ray_session(run_dir: Path, *, address: str | None = None, num_cpus: int | None = None) -> Iterator[bool]:
    """Use the running Ray (or ``address``), else start a local head for this run and shut it down afterwards.

    Yields:
        True when this call started Ray (and will shut it down), False when it reused one.

    Raises:
        RayStartError: Ray failed to start or to connect to ``address``.
    """
    import ray

    with routed_ray_logs() as handler, _quiet_env():
        if ray.is_initialized():
            yield False
            return
        temp_dir = ray_temp_dir(run_dir)
        cpus = num_cpus or os.cpu_count() or 1
        kwargs = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING,
                  "configure_logging": False}
        try:
            if address:
                ray.init(address=address, **kwargs)
            else:
                temp_dir.mkdir(parents=True, exist_ok=True)
                ray.init(address="local", num_cpus=cpus, _temp_dir=str(temp_dir), **kwargs)
        except Exception as exc:
            where = address or f"a local head ({cpus} CPUs, temp dir {temp_dir})"
            raise RayStartError(f"could not start Ray at {where}: {exc}") from exc
        finally:
            logging.getLogger("ray").handlers = [handler]  # ray.init(configure_logging=False) cleared them
        _run_log.info("joined Ray at %s" if address else "started a local Ray head; its process logs are under %s",
                      address or temp_dir)
        try:
            yield True
        finally:
            ray.shutdown()
