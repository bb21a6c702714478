"""medopt's SLO-aware controller: queueing formulas checked by hand, forecast, hysteresis and zero handling."""

from __future__ import annotations

import math

import pytest

from medopt.bench.scaling.controller import Sample
from medopt.bench.scaling.profile import ServiceProfile
from medopt.bench.scaling.slo import SloConfig, SloController, erlang_c, predicted_quantile_ms

# Deterministic 10 ms service (mu = 100/s per replica, c_s^2 = 0, p99 = 10 ms), 1 s cold start.
PROFILE = ServiceProfile(service_ms={"1": [10.0] * 20}, cold_start_s=[1.0])


def ctl(**kw: object) -> SloController:
    base: dict[str, object] = {"slo_ms": 200.0, "max_replicas": 8}
    return SloController(SloConfig(**{**base, **kw}), PROFILE)  # type: ignore[arg-type]


def feed(c: SloController, t0: int, t1: int, rps: float, ready: int, concurrency: float = 0.0) -> None:
    for t in range(t0, t1):
        c.observe(Sample(at=float(t), concurrency=concurrency, rps=rps, ready=ready))


def test_erlang_c_by_hand() -> None:
    # a = 1.5, n = 2: B1 = 1.5/2.5 = 0.6, B2 = 0.9/2.9 = 0.31034; C = B2 / (1 - 0.75 * (1 - B2)) = 0.642857
    assert erlang_c(2, 1.5) == pytest.approx(0.642857, abs=1e-6)
    assert erlang_c(1, 0.5) == pytest.approx(0.5)   # M/M/1: P(wait) = rho
    assert erlang_c(1, 1.0) == 1.0 and erlang_c(3, 0.0) == 0.0


def test_predicted_p99_by_hand() -> None:
    # n=2, 150/s: theta = (1 + 0)/2 / (200 - 150) = 10 ms; wait99 = 10 ln(0.642857 / 0.01) = 41.63; + 10
    p2 = predicted_quantile_ms(150, 2, mean_ms=10, scv=0.0, service_q_ms=10)
    assert p2 == pytest.approx(10 * math.log(0.6428571 / 0.01) + 10, rel=1e-6)
    assert p2 == pytest.approx(51.63, abs=0.01)
    # n=3: C = 0.236842, theta = 0.5 / 150 s = 3.333 ms: 3.333 ln(23.684) + 10 = 20.55
    assert predicted_quantile_ms(150, 3, mean_ms=10, scv=0.0, service_q_ms=10) == pytest.approx(20.55, abs=0.01)
    assert math.isinf(predicted_quantile_ms(150, 1, mean_ms=10, scv=0.0, service_q_ms=10))  # rho = 1.5
    # C <= 1% -> no wait at the 99th percentile: only the service p99
    assert predicted_quantile_ms(1, 4, mean_ms=10, scv=0.0, service_q_ms=10) == 10


def test_analytic_replica_counts() -> None:
    # 150/s on 10 ms: one replica saturates (rho 1.5); two give 51.6 ms <= 160 (200 * 0.8)
    assert ctl().replicas_for(150) == 2
    # SLO 50 ms (budget 40): 2 give 51.6 > 40, 3 give 20.6
    assert ctl(slo_ms=50.0).replicas_for(150) == 3
    # 50/s: M/M/1-like wait 10 ln(0.5 / 0.01) = 39.1 + 10 = 49.1 <= 160
    assert ctl().replicas_for(50) == 1


def test_more_rate_more_replicas_and_saturation() -> None:
    c = ctl()
    counts = [c.replicas_for(r) for r in (50, 150, 350, 650)]
    assert counts == sorted(counts) and counts[0] < counts[-1]
    assert counts[2] >= 4  # 350/s needs n > 3.5
    assert c.replicas_for(10_000) == 8  # rho >= 1 for every n <= max -> max


def test_decide_on_constant_rate() -> None:
    c = ctl()
    feed(c, 0, 20, 150.0, ready=1)
    # constant input: Holt level 150, trend 0, errors 0 -> forecast exactly 150 -> 2 replicas
    assert c.forecast_rps() == pytest.approx(150.0)
    d = c.decide(19, 1)
    assert d.desired == 2 and d.mode == "up"


def test_trend_forecast_anticipates_a_ramp() -> None:
    c = ctl(safety_k=0.0)
    for t in range(10):
        c.observe(Sample(at=float(t), concurrency=0.0, rps=10.0 * (t + 1), ready=1))
    # rising 10/s every second: the forecast over the 1 s cold start + 2 s tick exceeds the last value (100)
    assert c.horizon_s == pytest.approx(3.0)
    assert c.forecast_rps() > 100.0


def test_backlog_adds_drain_rate() -> None:
    c = ctl()
    feed(c, 0, 5, 50.0, ready=1, concurrency=31.0)
    d = c.decide(4, 1)
    # 30 requests waiting beyond one per replica, drained over the 3 s horizon: +10/s
    assert d.detail["effective_rps"] == pytest.approx(d.detail["forecast_rps"] + 10.0)


def test_hysteresis_no_immediate_scale_down() -> None:
    c = ctl(scale_down_after_s=30.0)
    feed(c, 0, 20, 350.0, ready=4)
    high = c.decide(19, 4).desired
    assert high >= 4
    seen: dict[int, int] = {}
    for t in range(21, 121, 2):
        feed(c, t - 1, t + 1, 50.0, ready=seen.get(t - 2, high))
        seen[t] = c.decide(t, seen.get(t - 2, high)).desired
    # the recommendation at 19 keeps the count until 49 (window [19, 49]); the first step down is at 51
    assert all(seen[t] == high for t in range(21, 50, 2))
    assert seen[51] < high
    steps = [seen[t] for t in range(21, 121, 2)]
    for a, b in zip(steps, steps[1:]):
        assert b >= math.ceil(a / 2)  # at most halved per decision
    assert steps[-1] == 1  # 50/s settles at one replica


def test_hysteresis_from_the_start() -> None:
    c = ctl(initial_replicas=4, scale_down_after_s=30.0)
    feed(c, 0, 2, 50.0, ready=4)
    # 50/s needs 1, but the first decision (at 1) starts the 30 s window: hold 4 through 29
    assert [c.decide(t, 4).desired for t in (1, 15, 29)] == [4, 4, 4]
    feed(c, 2, 32, 50.0, ready=4)
    d = c.decide(31, 4)
    assert (d.desired, d.mode) == (2, "down")  # halved at most: max(1, ceil(4 / 2))


def test_scale_up_is_immediate() -> None:
    c = ctl()
    feed(c, 0, 10, 50.0, ready=1)
    assert c.decide(9, 1).desired == 1
    feed(c, 10, 11, 600.0, ready=1)
    assert c.decide(10, 1).desired > 1


def test_zero_rate() -> None:
    one = ctl()
    feed(one, 0, 100, 0.0, ready=1)
    d = one.decide(99, 1)
    assert d.desired == 1  # min_replicas 1: never zero
    zero = ctl(min_replicas=0, idle_s=10.0)
    feed(zero, 0, 6, 0.0, ready=1)
    assert zero.decide(5, 1).desired == 1    # idle 5 s < 10 s
    feed(zero, 6, 11, 0.0, ready=1)
    assert zero.decide(10, 1).desired == 0   # idle for 10 s
    assert zero.decide(12, 0).desired == 0
    zero.observe(Sample(at=13.0, concurrency=1.0, rps=2.0, ready=0))
    d = zero.decide(13, 0)
    assert d.desired >= 1 and d.activator_in_path


def test_initial_before_samples_and_scaled() -> None:
    c = ctl(initial_replicas=3)
    assert (c.decide(0, 0).desired, c.decide(0, 0).mode) == (3, "initial")
    cfg = SloConfig().scaled(0.1)
    assert (cfg.tick_s, cfg.scale_down_after_s, cfg.idle_s, cfg.error_window_s) == pytest.approx(
        (0.2, 1.5, 6.0, 3.0))
    # horizon = cold start 1 s * 0.1 + tick 0.2
    assert SloController(cfg, PROFILE).horizon_s == pytest.approx(0.3)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="min_replicas"):
        SloConfig(min_replicas=5, max_replicas=2)
    with pytest.raises(ValueError):
        SloConfig(headrom=0.5)  # type: ignore[call-arg]


def test_unreachable_slo_picks_no_wait() -> None:
    slow = ServiceProfile(service_ms={"1": [300.0] * 5}, cold_start_s=[1.0])
    c = SloController(SloConfig(slo_ms=200.0, max_replicas=8), slow)
    # service p99 300 ms > budget 160: the smallest n whose P(wait) <= 1%. At 1/s, a = 0.3:
    # n=1: C = 0.3; n=2: B2 = 0.0335, C = 0.0335 / (1 - 0.15 * 0.9665) = 0.039; n=3: B3 = 0.00334, C = 0.0037
    assert erlang_c(2, 0.3) == pytest.approx(0.0391, abs=1e-4)
    assert c.replicas_for(1.0) == 3
