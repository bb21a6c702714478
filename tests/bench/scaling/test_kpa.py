"""Knative KPA controller and its metric buckets, against cases worked out by hand from Knative's formulas."""

from __future__ import annotations

import pytest

from medopt.bench.scaling.buckets import ScalingError, TimedBuckets
from medopt.bench.scaling.controller import Sample
from medopt.bench.scaling.kpa import KpaConfig, KpaController
from medopt.errors import MedoptError


def feed(c: KpaController, t0: int, t1: int, concurrency: float, ready: int, rps: float | None = None) -> None:
    """One sample per second at t0 .. t1-1."""
    for t in range(t0, t1):
        c.observe(Sample(at=float(t), concurrency=concurrency, rps=concurrency if rps is None else rps,
                         ready=ready))


# ---------------------------------------------------------------- buckets

def test_bucket_window_average_constant_and_fresh_series() -> None:
    b = TimedBuckets(1.0)
    for t in range(3):
        b.record(t, 6.0)
    # only 3 buckets since the first write: 18 / 3, not 18 / 60
    assert b.window_average(2, 60) == pytest.approx(6.0)
    assert TimedBuckets().window_average(5, 60) == 0.0


def test_bucket_gap_counts_as_zero() -> None:
    b = TimedBuckets(1.0)
    b.record(0, 10.0)
    b.record(2, 10.0)
    # buckets 0, 1, 2 -> (10 + 0 + 10) / 3
    assert b.window_average(2, 3) == pytest.approx(20.0 / 3)
    # window 2 s: the silence 0 -> 2 lasted a whole window, so the series restarts at 2: 10 / 1 (Knative)
    assert b.window_average(2, 2) == pytest.approx(10.0)
    b.record(3, 10.0)
    b.record(5, 10.0)
    # window 3 = buckets 3..5, series began before (gap 2 < 3): (10 + 0 + 10) / 3
    assert b.window_average(5, 3) == pytest.approx(20.0 / 3)
    c = TimedBuckets(1.0)
    for t in (0, 2, 3):
        c.record(t, 10.0)
    # window 3 = buckets 1..3; bucket 1 is empty but the series began at 0 (gap 2 < 3): (0 + 10 + 10) / 3
    assert c.window_average(3, 3) == pytest.approx(20.0 / 3)


def test_bucket_trailing_silence_and_expiry() -> None:
    b = TimedBuckets(1.0)
    for t in range(10):
        b.record(t, 10.0)
    # now 12, window 6 = buckets 7..12; data up to 9 only: (10+10+10) / 3 (trailing buckets not counted)
    assert b.window_average(12, 6) == pytest.approx(10.0)
    # now 15: buckets 10..15 hold nothing -> 0
    assert b.window_average(15, 6) == 0.0


def test_bucket_series_restarts_after_a_silent_window() -> None:
    b = TimedBuckets(1.0)
    for t in range(5):
        b.record(t, 10.0)
    b.record(20, 4.0)
    # window 10 = buckets 11..20; previous write at 4 is >= 10 buckets before 20 -> new series: 4 / 1
    assert b.window_average(20, 10) == pytest.approx(4.0)
    # window 60: no restart (gap 16 < 60): (5*10 + 4) / 21 buckets (0..20)
    assert b.window_average(20, 60) == pytest.approx(54.0 / 21)


def test_bucket_means_within_a_bucket_and_granularity() -> None:
    b = TimedBuckets(1.0)
    b.record(0.2, 10.0)
    b.record(0.7, 20.0)
    assert b.window_average(0.9, 1) == pytest.approx(15.0)
    h = TimedBuckets(0.5)
    for i, v in enumerate([1.0, 2.0, 3.0, 4.0]):
        h.record(i * 0.5, v)
    # 1 s = buckets at 1.0 and 1.5: (3 + 4) / 2
    assert h.window_average(1.5, 1.0) == pytest.approx(3.5)


def test_bucket_pruning_and_errors() -> None:
    b = TimedBuckets(1.0, retain_s=10)
    for t in range(100):
        b.record(t, 1.0)
    assert len(b) <= 11
    with pytest.raises(ScalingError):
        b.window_average(5, 0)
    with pytest.raises(MedoptError):
        TimedBuckets(0)
    assert issubclass(ScalingError, ValueError)


# ---------------------------------------------------------------- target

@pytest.mark.parametrize(("cc", "target", "total", "per_pod"), [
    (0, None, 100.0, 70.0),     # default 100 * 70%
    (10, None, 10.0, 7.0),      # CC 10 * 70%
    (0, 50.0, 50.0, 35.0),      # annotation 50 * 70%
    (10, 50.0, 10.0, 7.0),      # annotation capped at CC: min(50, 10) * 70%
    (10, 5.0, 5.0, 3.5),        # annotation below CC: 5 * 70%
])
def test_target(cc: int, target: float | None, total: float, per_pod: float) -> None:
    cfg = KpaConfig(container_concurrency=cc, target=target)
    assert cfg.total_value() == pytest.approx(total)
    assert cfg.target_value() == pytest.approx(per_pod)


def test_target_floor_and_percentage() -> None:
    # 0.01 * 50% = 0.005 -> floored at 0.01
    assert KpaConfig(target=0.01, container_concurrency_target_percentage=50).target_value() == 0.01
    assert KpaConfig(container_concurrency_target_percentage=100).target_value() == 100.0


# ---------------------------------------------------------------- stable mode

def test_initial_scale_before_samples() -> None:
    d = KpaController(KpaConfig(initial_scale=3)).decide(0.0, 0)
    assert (d.desired, d.mode) == (3, "initial")


def test_stable_scale_up() -> None:
    c = KpaController()
    feed(c, 0, 60, 200.0, ready=2)
    d = c.decide(59, 2)
    # ceil(200 / 70) = 3; 3 / 2 = 150% < 200%: stable
    assert (d.desired, d.mode) == (3, "stable")
    assert d.detail["stable"] == pytest.approx(200.0) and d.detail["desired_stable"] == 3


def test_stable_scale_down_within_rate() -> None:
    c = KpaController()
    feed(c, 0, 60, 140.0, ready=4)
    # ceil(140 / 70) = 2 >= floor(4 / 2) = 2
    assert c.decide(59, 4).desired == 2


def test_max_scale_down_rate_two_per_decision() -> None:
    c = KpaController()
    feed(c, 0, 60, 70.0, ready=10)
    # ceil(70 / 70) = 1, but at most halved: floor(10 / 2) = 5
    d = c.decide(59, 10)
    assert d.desired == 5 and d.detail["desired_stable"] == 5
    assert c.decide(59, 5).desired == 2  # floor(5 / 2) = 2


def test_max_scale_up_rate() -> None:
    c = KpaController(KpaConfig(max_scale_up_rate=1.5))
    feed(c, 0, 60, 700.0, ready=3)
    # ceil(700 / 70) = 10, capped at ceil(3 * 1.5) = 5 (also for the panic count)
    d = c.decide(59, 3)
    assert d.detail["desired_stable"] == 5 and d.detail["desired_panic"] == 5 and d.desired == 5


# ---------------------------------------------------------------- panic mode

def _burst(c: KpaController, level: float, ready: int = 2) -> None:
    feed(c, 0, 54, 0.0, ready)
    feed(c, 54, 60, level, ready)


def test_panic_entry_at_exactly_200_percent() -> None:
    c = KpaController()
    _burst(c, 210.01)
    d = c.decide(59, 2)
    # stable = 6*210.01/60 = 21.0 -> 1; panic = 210.01 -> ceil(3.0001) = 4; 4 / 2 = 200% -> panic
    assert d.mode == "panic" and d.detail["panic_since"] == 59
    assert d.desired == 4 and d.detail["desired_stable"] == 1


def test_no_panic_just_below_threshold() -> None:
    c = KpaController()
    _burst(c, 210.0)
    d = c.decide(59, 2)
    # panic = 210 -> ceil(3.0) = 3; 3 / 2 = 150% < 200%: stable, desired = ceil(21 / 70) = 1
    assert d.mode == "stable" and d.desired == 1 and d.detail["panic_since"] is None


def test_no_scale_down_in_panic_and_exit_one_window_after_trigger() -> None:
    c = KpaController()
    _burst(c, 280.0)
    assert c.decide(59, 2).desired == 4  # ceil(280/70) = 4, 4/2 = 200%
    feed(c, 60, 122, 0.0, ready=4)
    # at 61: panic = 4*280/6 = 186.7 -> 3; 3/4 < 2 so no re-trigger, but still within 59 + 60: hold 4
    d = c.decide(61, 4)
    assert (d.mode, d.desired) == ("panic", 4)
    # at 100 demand is 0 (desired_panic = floor(4/2) = 2) but panic never scales down
    d = c.decide(100, 4)
    assert (d.mode, d.desired, d.detail["desired_panic"]) == ("panic", 4, 2)
    # exactly one stable window after the trigger (59 + 60 = 119): still panic (Knative: strictly after)
    assert c.decide(119, 4).mode == "panic"
    d = c.decide(121, 4)
    # stable window 62..121 is all 0 -> 0, clamped to floor(4 / 2) = 2
    assert (d.mode, d.desired, d.detail["panic_since"]) == ("stable", 2, None)


def test_panic_extended_when_retriggered() -> None:
    c = KpaController()
    _burst(c, 280.0)
    assert c.decide(59, 2).mode == "panic"
    feed(c, 60, 76, 0.0, ready=4)
    feed(c, 76, 82, 600.0, ready=4)
    d = c.decide(81, 4)
    # panic window 76..81 = 600 -> ceil(8.57) = 9; 9/4 >= 2: re-trigger at 81, desired 9
    assert (d.detail["panic_since"], d.desired, d.detail["panic_started"]) == (81, 9, 59)
    feed(c, 82, 144, 0.0, ready=9)
    assert c.decide(121, 9).mode == "panic"   # would have ended after 119 without the re-trigger
    assert c.decide(141, 9).desired == 9      # 81 + 60: still panic, no scale-down
    d = c.decide(143, 9)
    assert d.mode == "stable" and d.desired == 4  # floor(9 / 2) = 4


# ---------------------------------------------------------------- scale-down delay

def _ramp_down(c: KpaController) -> dict[int, int]:
    feed(c, 0, 10, 280.0, ready=4)
    feed(c, 10, 26, 70.0, ready=4)
    return {t: c.decide(t, 4).desired for t in range(9, 26, 2)}


def test_scale_down_delay_keeps_max_over_window() -> None:
    # stable window 10 s: stable at 9 = 280 -> 4; 11: (8*280+2*70)/10 = 238 -> 4; 13: 196 -> 3; 15: 154 -> 3;
    # 17: 112 -> 2; 19+: 70 -> 1, clamped to floor(4/2) = 2
    plain = _ramp_down(KpaController(KpaConfig(stable_window_s=10)))
    assert plain == {9: 4, 11: 4, 13: 3, 15: 3, 17: 2, 19: 2, 21: 2, 23: 2, 25: 2}
    # delay 10 s: max over (t - 10, t]; the last 4 is at 11 -> 4 until 19, 3 from 21 (last 3 at 15) until 23
    delayed = _ramp_down(KpaController(KpaConfig(stable_window_s=10, scale_down_delay_s=10)))
    assert delayed == {9: 4, 11: 4, 13: 4, 15: 4, 17: 4, 19: 4, 21: 3, 23: 3, 25: 2}


# ---------------------------------------------------------------- activator / burst capacity

@pytest.mark.parametrize(("tbc", "ready", "panic", "ebc", "in_path"), [
    (211, 2, 0.0, -11.0, True),     # floor(2*100 - 211 - 0)
    (211, 3, 50.0, 39.0, False),    # floor(300 - 211 - 50)
    (211, 3, 89.5, -1.0, True),     # floor(300 - 211 - 89.5) = floor(-0.5)
    (0, 1, 50.0, 0.0, False),       # TBC 0: never, unless no ready pod
    (0, 0, 50.0, 0.0, True),
    (-1, 5, 0.0, -1.0, True),       # TBC -1: always
])
def test_excess_burst_capacity(tbc: float, ready: int, panic: float, ebc: float, in_path: bool) -> None:
    c = KpaController(KpaConfig(target_burst_capacity=tbc))
    feed(c, 0, 60, panic, ready=ready)
    d = c.decide(59, ready)
    assert d.detail["ebc"] == ebc and d.activator_in_path is in_path


# ---------------------------------------------------------------- scale to / from zero

def test_scale_to_zero_after_idle_and_grace_then_from_zero() -> None:
    c = KpaController(KpaConfig(min_scale=0))
    feed(c, 0, 10, 10.0, ready=1)
    feed(c, 10, 102, 0.0, ready=1)
    # last nonzero bucket 9; stable window [T-59, T] is all zero from T = 69
    assert c.decide(68, 1).desired == 1
    d = c.decide(69, 1)
    assert (d.desired, d.activator_in_path, d.detail["idle_since"]) == (1, True, 69)  # grace: keep 1
    assert c.decide(98, 1).desired == 1   # 69 + 29 < 69 + 30
    assert c.decide(99, 1).desired == 0   # grace passed
    assert c.decide(101, 0).desired == 0
    c.observe(Sample(at=102.0, concurrency=1.0, rps=1.0, ready=0))
    d = c.decide(102, 0)
    assert d.desired == 1 and d.activator_in_path and d.detail["idle_since"] is None


def test_traffic_at_zero_ready_scales_up_at_once() -> None:
    c = KpaController(KpaConfig(min_scale=0, initial_scale=0))
    feed(c, 0, 10, 0.0, ready=0)
    # at zero with no traffic: no grace replica (nothing is ready to keep)
    assert c.decide(9, 0).desired == 0
    c.observe(Sample(at=10.0, concurrency=0.0, rps=3.0, ready=0))
    # stable average still 0 (concurrency not yet visible) but requests arrived: at least 1
    assert c.decide(10, 0).desired == 1


def test_never_below_one_with_min_scale_one() -> None:
    c = KpaController()
    feed(c, 0, 10, 10.0, ready=1)
    feed(c, 10, 200, 0.0, ready=1)
    assert [c.decide(t, 1).desired for t in (69, 99, 150, 199)] == [1, 1, 1, 1]


# ---------------------------------------------------------------- bounds, config

def test_min_and_max_scale_clamps() -> None:
    low = KpaController(KpaConfig(min_scale=3))
    feed(low, 0, 60, 10.0, ready=3)
    assert low.decide(59, 3).desired == 3  # ceil(10/70) = 1 -> 3
    high = KpaController(KpaConfig(max_scale=5))
    feed(high, 0, 60, 7000.0, ready=4)
    assert high.decide(59, 4).desired == 5  # ceil(7000/70) = 100 -> 5


def test_config_rejects_unknown_and_invalid() -> None:
    with pytest.raises(ValueError, match="stable_windw_s"):
        KpaConfig(stable_windw_s=3)  # type: ignore[call-arg]
    with pytest.raises(ValueError):
        KpaConfig(max_scale_down_rate=1.0)
    with pytest.raises(ValueError):
        KpaConfig(min_scale=5, max_scale=2)


def test_scaled_multiplies_time_settings() -> None:
    cfg = KpaConfig(scale_down_delay_s=10).scaled(0.1)
    assert (cfg.stable_window_s, cfg.scale_to_zero_grace_period_s, cfg.scale_down_delay_s, cfg.tick_s,
            cfg.bucket_s) == pytest.approx((6.0, 3.0, 1.0, 0.2, 0.1))
    assert cfg.panic_window_s() == pytest.approx(0.6)
    assert cfg.max_scale_down_rate == 2.0


def test_scaled_controller_exits_panic_after_scaled_window() -> None:
    c = KpaController(KpaConfig().scaled(0.1))  # stable 6 s, panic 0.6 s, 0.1 s buckets
    for i in range(60):
        c.observe(Sample(at=i / 10, concurrency=280.0 if i >= 54 else 0.0, rps=0.0, ready=2))
    assert c.decide(5.9, 2).mode == "panic"
    for i in range(60, 130):
        c.observe(Sample(at=i / 10, concurrency=0.0, rps=0.0, ready=4))
    assert c.decide(11.9, 4).mode == "panic"   # 5.9 + 6
    assert c.decide(12.1, 4).mode == "stable"
