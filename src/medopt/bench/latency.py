"""Latency percentiles from an HDR histogram, and the stability rule for measurement windows.

Why HDR: percentiles up to p99.9 over tens of thousands of samples at 3 significant digits in fixed memory, the same
numbers wrk2 and perf tools report, merged across windows without keeping every sample.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

PERCENTILES = (50.0, 90.0, 99.0, 99.9)
_MAX_US = 3_600_000_000  # one hour in microseconds


def histogram(latencies_ms: Iterable[float]) -> Any:
    """An ``HdrHistogram`` (microsecond resolution, 3 significant digits) of the latencies in milliseconds."""
    from hdrh.histogram import HdrHistogram

    hist = HdrHistogram(1, _MAX_US, 3)
    for value in latencies_ms:
        hist.record_value(min(_MAX_US, max(1, int(round(value * 1000.0)))))
    return hist


def percentiles(latencies_ms: Sequence[float]) -> dict[str, float | int | None]:
    """``count``, ``mean_ms``, ``p50_ms`` … ``p99.9_ms``, ``max_ms`` of the latencies (None when there are none)."""
    if not latencies_ms:
        return {"count": 0, "mean_ms": None, "max_ms": None, **{f"p{p:g}_ms": None for p in PERCENTILES}}
    hist = histogram(latencies_ms)
    out: dict[str, float | int | None] = {"count": int(hist.get_total_count()),
                                          "mean_ms": hist.get_mean_value() / 1000.0}
    for p in PERCENTILES:
        out[f"p{p:g}_ms"] = hist.get_value_at_percentile(p) / 1000.0
    out["max_ms"] = hist.get_max_value() / 1000.0
    return out


def stable(windows: Sequence[dict[str, float]], *, last: int = 3, tolerance: float = 0.10,
           keys: Sequence[str] = ("throughput", "latency")) -> bool:
    """Triton perf_analyzer's rule: the last ``last`` windows agree within ``tolerance`` in every key.

    "Agree" is ``max / min - 1 <= tolerance`` per key (a key that is zero in every window agrees).
    """
    if len(windows) < last:
        return False
    tail = windows[-last:]
    for key in keys:
        values = [float(w[key]) for w in tail]
        lo, hi = min(values), max(values)
        if hi == 0:
            continue
        if lo <= 0 or hi / lo - 1.0 > tolerance:
            return False
    return True
