"""Load average before, during and after a benchmark, and whether the run should be trusted as quiet.

Rule (``loaded``): with ``cores`` the CPUs this process may use and ``threshold`` (default 0.5),
- *started busy*: the 1-minute load average before the run exceeds ``threshold x cores``; this reading excludes the
  benchmark itself, so it is the cleanest signal of other work on the machine;
- *busy during*: the median 1-minute load sampled during the run, less ``own_load`` (the threads the benchmark itself
  keeps running, which the caller states, default 1), exceeds ``threshold x cores``.
``loaded`` is true when either holds. The 1-minute average lags by about a minute, so short runs are judged mostly by
the before-reading.
"""

from __future__ import annotations

import os
import statistics
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

LoadReader = Callable[[], tuple[float, float, float]]


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class LoadMonitor:
    """Context manager that records ``os.getloadavg()`` before, every ``interval`` seconds during, and after a run."""

    def __init__(self, *, interval: float = 1.0, threshold: float = 0.5, own_load: float = 1.0,
                 cores: int | None = None, reader: LoadReader = os.getloadavg) -> None:
        self.interval = interval
        self.threshold = threshold
        self.own_load = own_load
        self.cores = cores if cores is not None else _cores()
        self._reader = reader
        self.before: list[float] | None = None
        self.after: list[float] | None = None
        self.during: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _read(self) -> list[float]:
        return [round(float(v), 3) for v in self._reader()]

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.during.append(self._read()[0])

    def __enter__(self) -> LoadMonitor:
        self.before = self._read()
        self.during, self.after = [], None
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, name="medopt-load-monitor", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def stop(self) -> None:
        """End sampling and take the after-reading (idempotent)."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self.after = self._read()

    def summary(self) -> dict[str, Any]:
        """The ``load`` block of a results JSON; see the module docstring for the ``loaded`` rule."""
        if self.before is None:
            raise RuntimeError("LoadMonitor.summary() before the monitor was entered")
        after = self.after if self.after is not None else self._read()
        during = self.during or [after[0]]
        limit = self.threshold * self.cores
        started_busy = self.before[0] > limit
        during_median = float(statistics.median(during))
        busy_during = during_median - self.own_load > limit
        return {
            "load_before": self.before,
            "load_during_max": float(max(during)),
            "load_during_median": during_median,
            "load_during_samples": len(self.during),
            "load_after": after,
            "cores": self.cores,
            "threshold": self.threshold,
            "own_load": self.own_load,
            "started_busy": started_busy,
            "busy_during": busy_during,
            "loaded": started_busy or busy_during,
            "rule": "loaded = load_before[0] > threshold*cores or load_during_median - own_load > threshold*cores",
        }
