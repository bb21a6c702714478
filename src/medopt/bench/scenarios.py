"""MLPerf-Inference-style scenarios over the load generator: SingleStream, Server (rate search), Offline.

- SingleStream: one request at a time (closed loop, concurrency 1); reported figure p90 latency.
- Server: Poisson arrivals; the highest rate whose p99 (from the scheduled send time) stays under a bound, found by
  bisection between a rate that meets it and one that does not; every probe is kept.
- Offline: as many samples as the server takes (closed loop at high concurrency); samples/s.
Each runs through ``run_load`` (its own process), so the numbers include no generator/server interference.
"""

from __future__ import annotations

from typing import Any

from medopt.bench.loadgen import LoadSpec, Target, run_load


def _spec(target: Target, **kw: Any) -> LoadSpec:
    return LoadSpec(target=target, keep_samples=False, **kw)


def single_stream(target: Target, *, duration_s: float = 5.0) -> dict[str, Any]:
    """p90 latency of one request at a time."""
    out = run_load(_spec(target, mode="closed", concurrency=1, arrival={"kind": "constant", "rate": 1,
                                                                         "duration_s": duration_s}))
    return {"p90_ms": out["latency"]["p90_ms"], "run": out}


def offline(target: Target, *, concurrency: int = 8, duration_s: float = 5.0) -> dict[str, Any]:
    """Samples per second with ``concurrency`` requests always outstanding."""
    out = run_load(_spec(target, mode="closed", concurrency=concurrency,
                         arrival={"kind": "constant", "rate": 1, "duration_s": duration_s}))
    return {"samples_per_s": out["achieved_rps"], "run": out}


def server(target: Target, *, p99_bound_ms: float, low_rps: float, high_rps: float, steps: int = 5,
           duration_s: float = 5.0, seed: int = 0) -> dict[str, Any]:
    """Highest Poisson rate in [low, high] meeting ``p99 <= p99_bound_ms`` with no errors (bisection)."""
    probes: list[dict[str, Any]] = []

    def meets(rate: float) -> bool:
        out = run_load(_spec(target, mode="open", drain_s=2.0, arrival={"kind": "poisson", "rate": rate,
                                                                        "duration_s": duration_s, "seed": seed}))
        p99 = out["latency"]["p99_ms"]
        ok = p99 is not None and p99 <= p99_bound_ms and not out["errors"]
        probes.append({"rate": rate, "p99_ms": p99, "achieved_rps": out["achieved_rps"], "errors": out["errors"],
                       "meets": ok})
        return ok

    best = low_rps if meets(low_rps) else None
    lo, hi = low_rps, high_rps
    if best is not None and meets(high_rps):
        best, lo = high_rps, high_rps
    for _ in range(steps if best is not None and lo < hi else 0):
        mid = (lo + hi) / 2
        if meets(mid):
            best, lo = mid, mid
        else:
            hi = mid
    return {"max_rps": best, "p99_bound_ms": p99_bound_ms, "probes": probes}
