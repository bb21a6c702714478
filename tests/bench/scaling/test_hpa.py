"""Kubernetes HPA controller (KServe RawDeployment), against cases worked out by hand from the HPA algorithm."""

from __future__ import annotations

from typing import Any

import pytest

from medopt.bench.scaling.controller import Sample
from medopt.bench.scaling.hpa import HpaConfig, HpaController


def feed(c: HpaController, t0: int, t1: int, *, ready: int, cpu: float = 0.0, concurrency: float = 0.0) -> None:
    for t in range(t0, t1):
        c.observe(Sample(at=float(t), concurrency=concurrency, rps=0.0, ready=ready, cpu=cpu))


def conc(**kw: Any) -> HpaController:
    return HpaController(HpaConfig(metric="concurrency", target_value=10.0, max_replicas=50, **kw))


def test_initial_before_samples() -> None:
    d = HpaController(HpaConfig(initial_replicas=3)).decide(0.0, 0)
    assert (d.desired, d.mode) == (3, "initial")


@pytest.mark.parametrize(("cpu", "desired"), [
    (0.85, 4),   # 0.85 / 0.8 = 1.0625: within 10%, keep 4
    (0.88, 4),   # 1.1 exactly: still within the tolerance
    (0.72, 4),   # 0.9 exactly: within
    (0.90, 5),   # 1.125 -> ceil(4 * 1.125) = ceil(4.5) = 5
    (0.60, 3),   # 0.75 -> ceil(3.0) = 3
])
def test_cpu_tolerance_and_ceil(cpu: float, desired: int) -> None:
    c = HpaController(HpaConfig(initial_replicas=4, max_replicas=20, scale_down_stabilization_s=0))
    feed(c, 1, 16, ready=4, cpu=cpu)
    assert c.decide(15, 4).desired == desired


def test_concurrency_metric_per_ready_replica() -> None:
    c = conc(initial_replicas=3)
    feed(c, 1, 16, ready=3, concurrency=45.0)
    # 45 / 3 = 15 per replica; 15 / 10 = 1.5 -> ceil(3 * 1.5) = ceil(4.5) = 5 (limit max(3+4, 6) = 7)
    d = c.decide(15, 3)
    assert d.desired == 5 and d.detail["metric"] == pytest.approx(15.0)


def test_metric_averaged_over_last_sync_period() -> None:
    c = conc(initial_replicas=2)
    feed(c, 1, 11, ready=2, concurrency=20.0)    # per replica 10
    feed(c, 11, 16, ready=2, concurrency=80.0)   # per replica 40
    # samples at 1..15: (10 * 10 + 5 * 40) / 15 = 20 -> ratio 2 -> ceil(2 * 2) = 4
    assert c.decide(15, 2).desired == 4


def test_scale_up_policy_cap() -> None:
    small = conc(initial_replicas=3)
    feed(small, 1, 16, ready=3, concurrency=300.0)
    # 100 per replica -> ratio 10 -> 30, but at most max(3 + 4, 3 * 2) = 7
    assert small.decide(15, 3).desired == 7
    # 5 s later, still inside the 15 s policy period that started at 3: limit stays 7
    feed(small, 16, 21, ready=3, concurrency=300.0)
    assert small.decide(20, 3).desired == 7
    big = conc(initial_replicas=10)
    feed(big, 1, 16, ready=10, concurrency=300.0)
    # 30 per replica -> ratio 3 -> 30, at most max(10 + 4, 10 * 2) = 20
    assert big.decide(15, 10).desired == 20
    # next period (15, 30]: from 20 the limit is 40; proposal ceil(20 * 1.5) = 30
    feed(big, 16, 31, ready=20, concurrency=300.0)
    assert big.decide(30, 20).desired == 30


def test_scale_down_stabilization_keeps_max_of_window() -> None:
    c = conc(initial_replicas=8)
    feed(c, 1, 16, ready=8, concurrency=80.0)      # 10 per replica: ratio 1 -> keep 8
    assert c.decide(15, 8).desired == 8
    out = {}
    for t in range(30, 316, 15):                   # 2.5 per replica: ceil(8 * 0.25) = 2 every period
        feed(c, t - 14, t + 1, ready=8, concurrency=20.0)
        d = c.decide(t, 8)
        assert d.detail["proposal"] == 2
        out[t] = d.desired
    assert out[30] == 8       # the 8 recommended at 15 is in (30 - 300, 30]
    assert out[300] == 8      # 15 is still in (0, 300]
    assert out[315] == 2      # window (15, 315] holds only 2s


def test_no_stabilization_scales_down_at_once_and_min_one() -> None:
    c = conc(initial_replicas=8, scale_down_stabilization_s=0)
    feed(c, 1, 16, ready=8, concurrency=20.0)
    assert c.decide(15, 8).desired == 2
    feed(c, 16, 31, ready=2, concurrency=0.0)
    assert c.decide(30, 2).desired == 1  # ceil(0) = 0 -> min_replicas 1 (an HPA never reaches zero)


def test_no_ready_replica_keeps_current() -> None:
    c = conc(initial_replicas=2)
    feed(c, 1, 16, ready=0, concurrency=50.0)
    assert c.decide(15, 0).desired == 2


def test_max_replicas_clamp() -> None:
    c = HpaController(HpaConfig(initial_replicas=4, max_replicas=6))
    feed(c, 1, 16, ready=4, cpu=2.0)
    assert c.decide(15, 4).desired == 6  # ceil(4 * 2.5) = 10 -> limit 8 -> max 6


def test_config_validation_and_scaled() -> None:
    with pytest.raises(ValueError, match="target_value"):
        HpaConfig(metric="rps")
    with pytest.raises(ValueError):
        HpaConfig(min_replicas=0)
    cfg = HpaConfig().scaled(0.1)
    assert (cfg.sync_period_s, cfg.scale_down_stabilization_s, cfg.scale_up_period_s) == pytest.approx(
        (1.5, 30.0, 1.5))
    assert HpaController(cfg).tick_s == pytest.approx(1.5)
