"""The simulator's CPU limit: a CFS quota per period on the replica's CPU share of each service time."""

from __future__ import annotations

import pytest

from medopt.bench.arrivals import ArrivalSpec
from medopt.bench.scaling.factory import under_limit
from medopt.bench.scaling.profile import ServiceProfile
from medopt.bench.scaling.scenario import ControllerSpec, ReplicaSpec, ScalingScenario
from medopt.bench.scaling.sim import SimulationError, _Replica, _throttled, simulate


def _r() -> _Replica:
    return _Replica(0, "ready", 0.0, 0.0)


def test_quota_runs_at_full_speed_then_waits_for_the_next_period() -> None:
    # quota 25 ms per 100 ms: 10 ms of CPU from t=0 fits; 40 ms needs 25 (t=0..25), wait to 100, 15 more -> 115
    assert _throttled(_r(), 0.0, 0.010, 0.025, 0.1) == pytest.approx(0.010)
    assert _throttled(_r(), 0.0, 0.040, 0.025, 0.1) == pytest.approx(0.115)
    r = _r()
    _throttled(r, 0.0, 0.020, 0.025, 0.1)  # 20 of this period's 25 ms used
    assert _throttled(r, 0.050, 0.010, 0.025, 0.1) == pytest.approx(0.055)  # 5 ms now, 5 ms at t=100: 105 - 50
    assert _throttled(r, 0.250, 0.010, 0.025, 0.1) == pytest.approx(0.010)  # a new period: quota back


def _scenario(rate: float, limit: float | None) -> ScalingScenario:
    return ScalingScenario(arrival=ArrivalSpec(kind="constant", rate=rate, duration_s=20), min_replicas=1,
                           max_replicas=1, initial_replicas=1, controller=ControllerSpec(kind="fixed"),
                           replica=ReplicaSpec(cpu_limit=limit), container_concurrency=1, queue_limit=100_000,
                           timeout_s=1000)


def test_a_quarter_core_serves_a_quarter_of_the_work_and_only_the_cpu_share_is_slowed() -> None:
    # 4 ms service, all CPU: 250/s unthrottled, 62.5/s at 0.25 core; at 50/s it keeps up, at 100/s it falls behind
    cpu_only = ServiceProfile(service_ms={"1": [4.0]}, cold_start_s=[1.0], cpu_ms=4.0)
    keeps = simulate(_scenario(50, 0.25), cpu_only)
    behind = simulate(_scenario(100, 0.25), cpu_only)
    assert keeps["latency"]["p99_ms"] < 120 and behind["latency"]["p99_ms"] > 2000
    half = cpu_only.model_copy(update={"cpu_ms": 2.0})  # half of each 4 ms is loopback: 2 ms/0.25 + 2 ms = 10 ms
    assert simulate(_scenario(90, 0.25), half)["latency"]["p99_ms"] < 120
    assert simulate(_scenario(100, None), cpu_only)["latency"]["p99_ms"] == pytest.approx(4.0, abs=0.01)


def test_a_profile_measured_under_another_limit_is_refused() -> None:
    prof = ServiceProfile(service_ms={"1": [4.0]}, cold_start_s=[1.0], cpu_limit=0.5)
    with pytest.raises(SimulationError, match="cpu_limit 0.5"):
        simulate(_scenario(10, 0.25), prof)


def test_capacity_planning_sees_the_cpu_share_slowed_by_the_limit() -> None:
    prof = ServiceProfile(service_ms={"1": [4.0]}, cold_start_s=[1.0], cpu_ms=2.0)
    planned = under_limit(prof, _scenario(10, 0.25))
    assert planned.mean_ms() == pytest.approx(2.0 + 2.0 / 0.25) and planned.cpu_limit == 0.25
    assert under_limit(prof, _scenario(10, None)) is prof
