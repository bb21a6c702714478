"""Where a request's time goes inside the server: per-stage microseconds, off unless ``serve.timing`` is on.

Stages of one inference request, in order (``STAGES``):

- ``read``: receiving the body after the headers arrived (REST only; gRPC hands the server a parsed message);
- ``decode``: body to the model's float32 batch (header parsing, numpy views, shape/finite checks);
- ``queue``: from handing the batch to the batcher until the runtime starts on it (waiting for more rows, a busy
  worker, the hand-off to the inference thread);
- ``infer``: the runtime call of the batch the request ran in (shared by every request of that batch);
- ``resume``: from the runtime's return until the request's handler runs again (the hand-off back to the event loop);
- ``encode``: probabilities and the protocol's response;
- ``total``: first to last of the above, as the server sees the request.

What the server cannot see (the client, the kernel's loopback, HTTP/2 framing before the handler) is the client's
latency minus ``total``; the benchmark reports that as ``outside_server``. With timing on, each inference response
carries a ``medopt-timing`` header (REST) or trailing metadata entry (gRPC) ``stage=us,...``, and
``GET /debug/timing`` returns the medians over the last ``capacity`` requests (``POST /debug/timing/reset`` clears
them); with timing off (the default) there is no header and ``/debug/timing`` is 404. A mark costs one
``perf_counter_ns`` call.
"""

from __future__ import annotations

import collections
import statistics
import time
from typing import Any

STAGES = ("read", "decode", "queue", "infer", "resume", "encode", "total")
HEADER = "medopt-timing"


class RequestTiming:
    """Stage durations (ns) of one request; ``mark(stage)`` closes the stage that started at the previous mark."""

    __slots__ = ("start", "last", "ns", "rows")

    def __init__(self) -> None:
        self.start = self.last = time.perf_counter_ns()
        self.ns: dict[str, int] = {}
        self.rows = 0

    def mark(self, stage: str) -> None:
        now = time.perf_counter_ns()
        self.ns[stage] = self.ns.get(stage, 0) + now - self.last
        self.last = now

    def set_span(self, stage: str, start_ns: int, end_ns: int) -> None:
        """A stage measured elsewhere (the batcher's inference thread), ending at ``end_ns``."""
        self.ns[stage] = end_ns - start_ns
        self.last = end_ns

    def finish(self) -> dict[str, float]:
        """Close ``total`` (once) and return every stage in microseconds."""
        self.ns.setdefault("total", time.perf_counter_ns() - self.start)
        return {k: self.ns[k] / 1000.0 for k in STAGES if k in self.ns}

    def header(self) -> str:
        return ",".join(f"{k}={self.ns[k] / 1000.0:.1f}" for k in STAGES if k in self.ns)


def parse_header(value: str) -> dict[str, float]:
    """A ``medopt-timing`` header back to {stage: microseconds}."""
    out = {}
    for part in value.split(","):
        key, _, num = part.partition("=")
        if key in STAGES:
            out[key] = float(num)
    return out


class Timings:
    """The last ``capacity`` requests' stage times; ``start()`` is None while disabled, so callers skip all work."""

    def __init__(self, enabled: bool = False, capacity: int = 4096) -> None:
        self.enabled = enabled
        self._rows: collections.deque[dict[str, float]] = collections.deque(maxlen=capacity)
        self._batch_rows: collections.deque[int] = collections.deque(maxlen=capacity)

    def start(self) -> RequestTiming | None:
        return RequestTiming() if self.enabled else None

    def record(self, timing: RequestTiming | None) -> str | None:
        """Keep ``timing`` (its ``total`` closes now) and return its header value; None when timing is off."""
        if timing is None:
            return None
        self._rows.append(timing.finish())
        self._batch_rows.append(timing.rows)
        return timing.header()

    def reset(self) -> None:
        self._rows.clear()
        self._batch_rows.clear()

    def summary(self) -> dict[str, Any]:
        rows = list(self._rows)
        out: dict[str, Any] = {"requests": len(rows), "median_us": {}, "mean_us": {}}
        for stage in STAGES:
            values = [r[stage] for r in rows if stage in r]
            if values:
                out["median_us"][stage] = statistics.median(values)
                out["mean_us"][stage] = statistics.fmean(values)
        if self._batch_rows:
            out["batch_rows_mean"] = statistics.fmean(self._batch_rows)
        return out
