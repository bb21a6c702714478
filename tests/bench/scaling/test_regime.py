"""The regime map: placements simulated per grid point, winners by p99 and by cost, profiles from JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from medopt.bench.links.profiles import LinkProfile
from medopt.bench.scaling.prices import default_prices
from medopt.bench.scaling.profile import ServiceProfile
from medopt.bench.scaling.regime import (
    PlacementProfile,
    PlacementProfileError,
    RegimeGrid,
    SplitProfile,
    base_scenario,
    batched,
    load_placement_profiles,
    regime_map,
    run_placement,
    winners,
)


def _ms(mean: float, n: int = 100, seed: int = 0) -> list[float]:
    return [float(x) for x in np.random.default_rng(seed).normal(mean, 0.05 * mean, n).clip(0.1 * mean)]


def synthetic(edge_ms: float = 30.0, cloud_ms: float = 3.0, image_bytes: int = 50_000) -> PlacementProfile:
    """Edge slow but local, cloud fast but behind the link."""
    return PlacementProfile(model="syn", cloud=ServiceProfile(service_ms={"1": _ms(cloud_ms)}, cold_start_s=[2.0]),
                            edge_ms=_ms(edge_ms, seed=1), image_bytes=image_bytes, response_bytes=100,
                            split=SplitProfile(layer="layer2", edge_ms=_ms(10.0, seed=2), cloud_ms={"1": _ms(2.0)},
                                               bytes_up=10_000))


def test_edge_wins_on_a_slow_far_link_and_cloud_on_a_lan() -> None:
    grid = RegimeGrid(bandwidth_mbit=[2.0, 1000.0], rtt_ms=[0.5, 600.0], rates=[5.0], duration_s=20.0)
    out = regime_map({"syn": synthetic()}, grid)
    assert len(out["points"]) == grid.size({"syn": synthetic()}) == 16
    table = {(w["bandwidth_mbit"], w["rtt_ms"]): w for w in out["winners"]}
    assert table[(2.0, 600.0)]["by_p99"] == "edge-only"
    assert table[(2.0, 600.0)]["by_cost"] == "edge-only"  # the only one within 200 ms
    assert table[(1000.0, 0.5)]["by_p99"].startswith("cloud")
    for p in out["points"]:
        assert {"p99_ms", "mean_ms", "slo_attainment", "replica_seconds", "cost_per_1000"} <= set(p)
    assert out["timing"]["points"] == 16 and out["timing"]["points_per_s"] > 0


def test_failures_count_as_infinitely_slow_and_never_win_on_cost() -> None:
    grid = RegimeGrid(bandwidth_mbit=[1000.0], rtt_ms=[0.5], rates=[100.0], duration_s=10.0,
                      placements=["edge-only", "cloud-only"])
    out = regime_map({"syn": synthetic()}, grid)  # the edge device (30 ms) cannot keep up with 100 req/s
    edge = next(p for p in out["points"] if p["placement"] == "edge-only")
    assert edge["errors"] and math.isinf(edge["p99_ms"])
    assert out["winners"][0]["by_p99"] == out["winners"][0]["by_cost"] == "cloud-only"


def test_winners_prefer_the_cheaper_of_equal_tails_and_report_none_when_nothing_meets() -> None:
    pts = [{"placement": "a", "p99_ms": 50.0, "cost_per_1000": 2.0},
           {"placement": "b", "p99_ms": 50.0, "cost_per_1000": 1.0},
           {"placement": "c", "p99_ms": 300.0, "cost_per_1000": 0.1}]
    assert winners(pts, 200.0) == {"by_p99": "b", "by_cost": "b", "p99_ms": 50.0, "cost_per_1000": 1.0}
    assert winners(pts, 10.0)["by_cost"] is None


def test_edge_only_cost_is_the_device_time_per_answered_request() -> None:
    prices = default_prices()
    link = LinkProfile(name="l", rtt_ms=1, rate_mbit=100)
    point = run_placement("edge-only", synthetic(), link, base_scenario(5.0, duration_s=20.0), prices=prices)
    assert point["replica_seconds"] == 0 and point["egress_bytes"] == 0
    assert point["cost_per_1000"] == pytest.approx(prices.edge_per_s * 20.0 * 1000 / point["ok"])


def test_cloud_cost_counts_replica_time_and_response_egress() -> None:
    prices = default_prices()
    link = LinkProfile(name="l", rtt_ms=1, rate_mbit=1000)
    sc = base_scenario(10.0, duration_s=20.0, min_replicas=2, max_replicas=2)
    point = run_placement("cloud-only", synthetic(), link, sc, prices=prices)
    assert point["replica_seconds"] == pytest.approx(40.0)
    assert point["egress_bytes"] == 100 * point["ok"]
    want = prices.cost_per_1000(40.0, point["egress_bytes"], 0.0, point["ok"])
    assert point["cost_per_1000"] == pytest.approx(want)


def test_batched_raises_container_concurrency_so_batches_can_form() -> None:
    sc = batched(base_scenario(10.0), 8)
    assert sc.replica.max_batch_size == 8 and sc.container_concurrency == 8
    assert sc.controller.settings["target"] == pytest.approx(8.0)


def test_placement_profiles_round_trip_through_json(tmp_path: Path) -> None:
    prof = synthetic()
    f = tmp_path / "profiles.json"
    f.write_text(json.dumps({"profiles": [prof.model_dump(mode="json")]}))
    loaded = load_placement_profiles(f)
    assert loaded == {"syn": prof}
    assert loaded["syn"].placements() == ["edge-only", "cloud-only", "split", "cloud-batched"]
    assert loaded["syn"].split_cloud().cold_start_s == prof.cloud.cold_start_s


@pytest.mark.parametrize(("content", "expected"), [
    ("{", "not valid JSON"),
    ('{"profiles": []}', "at least one profile"),
    ('{"profiles": [{"model": "m"}]}', "cloud: Field required"),
    ('{"profiles": [{"model": "m", "cloud": {"service_ms": {"1": [1]}, "cold_start_s": [1]}, "edge_ms": [-1],'
     ' "image_bytes": 10, "response_bytes": 1}]}', "edge_ms: needs at least one sample"),
    ('{"profiles": [{"model": "m", "cloud": {"service_ms": {"1": [1]}, "cold_start_s": [1]}, "edge_ms": [1],'
     ' "image_bytes": 10, "response_bytes": 1, "colour": 1}]}', "colour: unknown field"),
], ids=["bad-json", "empty", "missing-field", "negative-edge", "unknown-field"])
def test_bad_profile_files_fail_in_one_line(tmp_path: Path, content: str, expected: str) -> None:
    f = tmp_path / "p.json"
    f.write_text(content)
    with pytest.raises(PlacementProfileError, match=expected) as err:
        load_placement_profiles(f)
    assert "\n" not in str(err.value)


def test_an_unknown_model_in_the_grid_is_named() -> None:
    with pytest.raises(PlacementProfileError, match="'other'"):
        regime_map({"syn": synthetic()}, RegimeGrid(models=["other"]))


@pytest.mark.slow
def test_a_hundred_points_fit_in_ten_minutes() -> None:
    """16 points at 1,000 req/s for 60 s each (60k requests a point), extrapolated to 100."""
    prof = synthetic(edge_ms=0.6, cloud_ms=3.0, image_bytes=5_000)
    grid = RegimeGrid(bandwidth_mbit=[100.0, 1000.0], rtt_ms=[1.0, 20.0], rates=[1000.0], duration_s=60.0)
    out = regime_map({"syn": prof}, grid)
    per_point = out["timing"]["wall_s"] / out["timing"]["points"]
    assert 100 * per_point < 600.0, per_point
