"""make_controller: scenario bounds mapped into each controller's config, settings validated, time scaling."""

from __future__ import annotations

from typing import Any

import pytest

from medopt.bench.scaling.factory import ControllerConfigError, make_controller
from medopt.bench.scaling.fixed import FixedController
from medopt.bench.scaling.hpa import HpaController
from medopt.bench.scaling.kpa import KpaController
from medopt.bench.scaling.profile import ServiceProfile
from medopt.bench.scaling.scenario import ControllerSpec, ScalingScenario
from medopt.bench.scaling.slo import SloController
from medopt.errors import MedoptError

PROFILE = ServiceProfile(service_ms={"1": [10.0, 12.0]}, cold_start_s=[2.0])


def scenario(kind: str, settings: dict[str, Any] | None = None, **kw: Any) -> ScalingScenario:
    spec = ControllerSpec(kind=kind, settings=settings or {})  # type: ignore[arg-type]
    return ScalingScenario(controller=spec, **kw)


def build(s: ScalingScenario, **kw: Any) -> Any:
    return make_controller(s.controller, scenario=s, **kw)


def test_kpa_takes_bounds_from_scenario() -> None:
    s = scenario("kpa", {"target_burst_capacity": 0}, min_replicas=0, max_replicas=8, initial_replicas=2,
                 container_concurrency=4)
    c = build(s)
    assert isinstance(c, KpaController) and c.name == "kpa"
    cfg = c.config
    assert (cfg.min_scale, cfg.max_scale, cfg.initial_scale, cfg.container_concurrency,
            cfg.target_burst_capacity) == (0, 8, 2, 4, 0)


def test_unknown_setting_names_the_field() -> None:
    with pytest.raises(ControllerConfigError, match="stable_windw_s") as err:
        build(scenario("kpa", {"stable_windw_s": 6}))
    assert isinstance(err.value, MedoptError) and isinstance(err.value, ValueError)
    with pytest.raises(ControllerConfigError, match="sync_periods"):
        build(scenario("hpa", {"sync_periods": 6}))
    with pytest.raises(ControllerConfigError, match="replica_count"):
        build(scenario("fixed", {"replica_count": 2}))


def test_invalid_value_names_the_field() -> None:
    with pytest.raises(ControllerConfigError, match="max_scale_down_rate"):
        build(scenario("kpa", {"max_scale_down_rate": 0.5}))
    with pytest.raises(ControllerConfigError, match="target_value"):
        build(scenario("hpa", {"metric": "concurrency"}))


def test_unknown_kind_names_it() -> None:
    spec = ControllerSpec.model_construct(kind="vpa", settings={})
    with pytest.raises(ControllerConfigError, match="vpa"):
        make_controller(spec, scenario=ScalingScenario())


def test_setting_owned_by_scenario_conflicts() -> None:
    with pytest.raises(ControllerConfigError, match="min_scale.*min_replicas"):
        build(scenario("kpa", {"min_scale": 0}))
    # the same value as the scenario's is accepted
    assert build(scenario("kpa", {"min_scale": 1})).config.min_scale == 1


def test_hpa_and_slo_bounds() -> None:
    h = build(scenario("hpa", {"metric": "rps", "target_value": 50}, min_replicas=0, max_replicas=6))
    assert isinstance(h, HpaController)
    assert (h.config.min_replicas, h.config.max_replicas) == (1, 6)  # an HPA cannot go to zero
    s = build(scenario("slo", {"headroom": 0.7}, min_replicas=0, max_replicas=5, slo_ms=120.0), profile=PROFILE)
    assert isinstance(s, SloController)
    assert (s.config.min_replicas, s.config.max_replicas, s.config.slo_ms, s.config.headroom) == (0, 5, 120.0, 0.7)


def test_slo_needs_a_profile() -> None:
    with pytest.raises(ControllerConfigError, match="profile"):
        build(scenario("slo"))


def test_fixed_defaults_to_max_replicas() -> None:
    c = build(scenario("fixed", max_replicas=6))
    assert isinstance(c, FixedController) and c.decide(0.0, 1).desired == 6
    assert build(scenario("fixed", {"replicas": 3})).decide(5.0, 3).desired == 3


def test_time_scale_shrinks_windows() -> None:
    k = build(scenario("kpa"), time_scale=0.1).config
    assert (k.stable_window_s, k.scale_to_zero_grace_period_s, k.tick_s, k.bucket_s) == pytest.approx(
        (6.0, 3.0, 0.2, 0.1))
    h = build(scenario("hpa"), time_scale=0.1)
    assert (h.tick_s, h.config.scale_down_stabilization_s) == pytest.approx((1.5, 30.0))
    s = build(scenario("slo"), profile=PROFILE, time_scale=0.1)
    assert (s.tick_s, s.config.idle_s, s.horizon_s) == pytest.approx((0.2, 6.0, 0.2 + 0.2))
    assert build(scenario("fixed"), time_scale=0.5).tick_s == pytest.approx(1.0)
    with pytest.raises(ControllerConfigError, match="time_scale"):
        build(scenario("kpa"), time_scale=0.0)
