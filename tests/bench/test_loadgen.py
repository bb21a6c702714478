"""The load generator: schedules, open vs closed loop under a stall, achieved rate, errors, bounded runs."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from medopt.bench.arrivals import ArrivalError, ArrivalSpec, schedule
from medopt.bench.latency import percentiles, stable
from medopt.bench.loadgen import LoadGenError, LoadSpec, Target, run_load

SERVER = Path(__file__).with_name("slow_server.py")


def _start(service_ms: float, stall_at_s: float = 0.0, stall_ms: float = 0.0) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, str(SERVER), str(service_ms), str(stall_at_s), str(stall_ms)],
                            stdout=subprocess.PIPE, text=True)
    port = proc.stdout.readline().strip()
    assert port.isdigit(), "slow server did not start"
    return proc, f"http://127.0.0.1:{port}"


@pytest.fixture
def server() -> Iterator[tuple[subprocess.Popen, str]]:
    proc, url = _start(2.0)
    yield proc, url
    proc.kill()
    proc.wait()


def _spec(url: str, **kw) -> LoadSpec:
    arrival = kw.pop("arrival", {})
    return LoadSpec(target=Target(url=url, protocol="v2-binary", timeout_s=kw.pop("timeout_s", 5.0)),
                    arrival=ArrivalSpec(**arrival), drain_s=2.0, **kw)


# ------------------------------------------------------------------------------------------------ schedules
def test_poisson_schedule_offers_exactly_the_target_rate_with_exponential_gaps() -> None:
    t = schedule(ArrivalSpec(kind="poisson", rate=200, duration_s=20, seed=3))
    assert len(t) == 4000 and 0 <= t[0] and t[-1] < 20 and np.all(np.diff(t) >= 0)
    gaps = np.diff(t)
    assert abs(gaps.std() / gaps.mean() - 1.0) < 0.1          # exponential: cv 1
    const = np.diff(schedule(ArrivalSpec(kind="constant", rate=50, duration_s=2)))
    assert np.allclose(const, 0.02)


def test_bursty_step_spike_and_trace_schedules() -> None:
    gamma = np.diff(schedule(ArrivalSpec(kind="gamma", rate=100, duration_s=10, cv=3.0)))
    assert gamma.std() / gamma.mean() > 2.0
    step = schedule(ArrivalSpec(kind="step", segments=[{"seconds": 1, "rate": 10}, {"seconds": 1, "rate": 100}]))
    assert (step < 1).sum() == 10 and (step >= 1).sum() == 100
    spike = schedule(ArrivalSpec(kind="spike", rate=10, duration_s=3, spike_rate=200, spike_at_s=1, spike_s=0.5))
    assert ((spike >= 1) & (spike < 1.5)).sum() == 100 and len(spike) == 125
    onoff = schedule(ArrivalSpec(kind="onoff", rate=100, on_s=0.5, off_s=0.5, duration_s=2))
    assert len(onoff) == 100 and not ((onoff % 1.0) >= 0.5).any()
    trace = schedule(ArrivalSpec(kind="trace", trace=[10.0, 10.5, 12.0], speedup=2))
    assert np.allclose(trace, [0, 0.25, 1.0])


def test_bad_arrival_profiles_fail_with_a_reason(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        ArrivalSpec(kind="poisson", rate=-1)
    with pytest.raises(ValueError, match="rate > 0"):
        ArrivalSpec(kind="constant", rate=0)
    with pytest.raises(ValueError, match="at least one segment"):
        ArrivalSpec(kind="step")
    with pytest.raises(ValueError, match="Extra inputs"):
        ArrivalSpec(kind="poisson", rat=3)
    (tmp_path / "t.txt").write_text("0.1\nlater\n")
    with pytest.raises(ArrivalError, match="one timestamp"):
        schedule(ArrivalSpec(kind="trace", trace_file=str(tmp_path / "t.txt")))


def test_percentiles_and_stability_rule() -> None:
    p = percentiles([1.0] * 990 + [100.0] * 10)
    assert p["count"] == 1000 and p["p50_ms"] == pytest.approx(1.0, rel=1e-2)
    assert p["p99.9_ms"] == pytest.approx(100.0, rel=1e-2) and p["p99_ms"] == pytest.approx(1.0, rel=1e-2)
    w = [{"throughput": 100, "latency": 5}, {"throughput": 99, "latency": 5.2}, {"throughput": 104, "latency": 5.1}]
    assert stable(w) and not stable(w[:2])
    assert not stable(w + [{"throughput": 80, "latency": 5}])


# ------------------------------------------------------------------------------------------------ runs
@pytest.mark.slow
def test_open_loop_achieves_the_target_rate_below_capacity(server) -> None:
    _, url = server
    out = run_load(_spec(url, arrival={"kind": "poisson", "rate": 150, "duration_s": 3}))
    assert out["errors"] == {} and out["requests"] == 450
    assert abs(out["achieved_rps"] / 150 - 1) <= 0.01
    assert out["latency"]["p50_ms"] >= 2.0 and out["bytes_out"] > 450 * 28 * 28 * 4
    assert len(out["samples"]["latency_ms"]) == 450 and out["send_lag"]["p99_ms"] < out["latency"]["p99_ms"]


@pytest.mark.slow
def test_a_server_stall_shows_in_open_loop_p99_and_hides_in_closed_loop() -> None:
    results = {}
    for mode in ("open", "closed"):
        proc, url = _start(2.0, stall_at_s=1.0, stall_ms=200.0)
        try:
            results[mode] = run_load(_spec(url, mode=mode, concurrency=1,
                                           arrival={"kind": "constant", "rate": 100, "duration_s": 3}))
        finally:
            proc.kill()
            proc.wait()
    open_, closed = results["open"], results["closed"]
    assert open_["latency"]["p99_ms"] >= 100.0          # ~20 requests were scheduled during the 200 ms stall
    assert closed["latency"]["max_ms"] >= 190.0         # the closed loop saw the stall once ...
    assert closed["latency"]["p99_ms"] < 50.0           # ... and its p99 hides it
    assert open_["latency"]["p99_ms"] > 3 * closed["latency"]["p99_ms"]


@pytest.mark.slow
def test_a_dead_server_is_counted_as_errors_and_the_run_ends() -> None:
    proc, url = _start(2.0)
    proc.kill()
    proc.wait()
    out = run_load(_spec(url, warmup_requests=0, timeout_s=1.0, arrival={"kind": "constant", "rate": 20,
                                                                         "duration_s": 1}))
    assert out["ok"] == 0 and out["errors"].get("connect") == 20 and out["error_rate"] == 1.0


def test_an_invalid_spec_fails_in_one_line() -> None:
    proc = subprocess.run([sys.executable, "-m", "medopt.bench.loadgen"], input='{"target": {"url": "x"}, "mode": "x"}',
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "invalid load spec at mode" in proc.stderr
    assert "Traceback" not in proc.stderr
    with pytest.raises(ValueError, match="positive"):
        Target(url="http://x", input_shape=[1, 0])
    assert LoadGenError.__mro__[1].__name__ == "MedoptError"


@pytest.mark.slow
def test_a_server_dying_mid_run_is_counted_and_the_run_stays_bounded() -> None:
    import threading

    proc, url = _start(2.0)
    killer = threading.Timer(1.0, proc.kill)
    killer.start()
    try:
        out = run_load(_spec(url, timeout_s=1.0, arrival={"kind": "constant", "rate": 50, "duration_s": 3}))
    finally:
        killer.cancel()
        proc.kill()
        proc.wait()
    assert 20 <= out["ok"] <= 80                       # about the first second's requests were answered
    assert sum(out["errors"].values()) == out["requests"] - out["ok"] >= 50
    assert set(out["errors"]) <= {"connect", "connection-lost", "timeout", "unfinished"}
