"""The planner: the cheapest SLO-meeting placement and settings, a flagged fallback, KServe fields, the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from medopt.bench.links.profiles import LinkProfile, get_profile
from medopt.bench.scaling.planner import (
    ControllerChoice,
    PlanError,
    default_choices,
    plan,
    to_deploy_overrides,
    to_inference_service_fields,
)
from medopt.bench.scaling.prices import Prices
from medopt.bench.scaling.profile import ServiceProfile
from medopt.bench.scaling.regime import PlacementProfile, SplitProfile
from medopt.cli import main

LAN = LinkProfile(name="lan", rtt_ms=0.5, rate_mbit=1000)


def _ms(mean: float, seed: int = 0) -> list[float]:
    return [float(x) for x in np.random.default_rng(seed).normal(mean, 0.05 * mean, 100).clip(0.1 * mean)]


def _profile(edge_ms: float = 10.0, split: bool = True) -> PlacementProfile:
    cut = SplitProfile(edge_ms=_ms(4.0, 2), cloud_ms={"1": _ms(2.0, 3)}, bytes_up=8_000) if split else None
    return PlacementProfile(model="syn", cloud=ServiceProfile(service_ms={"1": _ms(3.0)}, cold_start_s=[2.0]),
                            edge_ms=_ms(edge_ms, 1), image_bytes=30_000, response_bytes=100, split=cut)


def _prices(replica_per_hour: float, edge_usd: float) -> Prices:
    return Prices(replica_usd_per_hour=replica_per_hour, egress_usd_per_gb=0.09, edge_device_usd=edge_usd,
                  edge_lifetime_years=3.0)


def test_picks_the_cheapest_placement_that_meets_the_slo() -> None:
    profiles = {"syn": _profile()}
    cheap_cloud = plan(LAN, 200.0, 20.0, profiles, _prices(0.01, 1e6), duration_s=20.0)
    assert cheap_cloud.meets_slo and cheap_cloud.placement in ("cloud-only", "cloud-batched")
    assert cheap_cloud.cost_per_1000 == min(c["cost_per_1000"] for c in cheap_cloud.candidates if c["meets_slo"])
    cheap_edge = plan(LAN, 200.0, 20.0, profiles, _prices(100.0, 100.0), duration_s=20.0)
    assert cheap_edge.placement == "edge-only" and cheap_edge.meets_slo
    assert cheap_edge.why[0].startswith("edge-only: p99") and "meets 200 ms" in cheap_edge.why[0]
    assert to_inference_service_fields(cheap_edge) == {}


def test_a_tight_slo_excludes_the_cheap_but_slow_option() -> None:
    profiles = {"syn": _profile(edge_ms=40.0)}
    loose = plan(LAN, 500.0, 10.0, profiles, _prices(100.0, 100.0), duration_s=20.0)
    tight = plan(LAN, 30.0, 10.0, profiles, _prices(100.0, 100.0), duration_s=20.0)
    assert loose.placement == "edge-only"
    assert tight.placement != "edge-only" and tight.meets_slo and tight.p99_ms <= 30.0
    assert any(line.startswith("edge-only: p99") and "misses 30 ms" in line for line in tight.why)


def test_objective_p99_picks_the_fastest_option_even_when_a_cheaper_one_meets_the_slo() -> None:
    profiles = {"syn": _profile(edge_ms=40.0)}
    cheap = plan(LAN, 500.0, 10.0, profiles, _prices(100.0, 100.0), duration_s=20.0)
    fast = plan(LAN, 500.0, 10.0, profiles, _prices(100.0, 100.0), duration_s=20.0, objective="p99")
    assert cheap.placement == "edge-only" and fast.placement != "edge-only" and fast.meets_slo
    assert fast.p99_ms == min(c["p99_ms"] for c in fast.candidates) < cheap.p99_ms
    assert fast.cost_per_1000 > cheap.cost_per_1000
    with pytest.raises(PlanError, match="objective must be one of cost, p99"):
        plan(LAN, 500.0, 10.0, profiles, objective="fastest")


def test_when_nothing_meets_the_slo_the_lowest_p99_is_returned_and_flagged() -> None:
    result = plan(get_profile("satellite"), 5.0, 5.0, {"syn": _profile()}, _prices(0.1, 100.0), duration_s=20.0)
    assert not result.meets_slo
    assert result.p99_ms == min(c["p99_ms"] for c in result.candidates)
    assert result.why[0].startswith("no option meets p99 5 ms over satellite")


def test_kserve_fields_come_from_the_chosen_settings() -> None:
    choice = ControllerChoice(container_concurrency=2, scale_target=2, min_replicas=1, max_replicas=3)
    result = plan(LAN, 200.0, 20.0, {"syn": _profile(split=False)}, _prices(0.01, 1e6), duration_s=20.0,
                  choices={"cloud-only": [choice], "cloud-batched": []})
    assert result.placement == "cloud-only"
    assert to_inference_service_fields(result) == {"minReplicas": 1, "maxReplicas": 3, "scaleTarget": 2,
                                                   "scaleMetric": "concurrency", "containerConcurrency": 2}
    assert any("KPA target 2 with containerConcurrency 2, 1-3 replicas" in line for line in result.why)
    from medopt.config import load_config

    deploy = load_config(None, to_deploy_overrides(result)).deploy  # the deploy step accepts the plan as it is
    assert (deploy.min_replicas, deploy.max_replicas, deploy.scale_target, deploy.container_concurrency,
            deploy.scale_metric, deploy.deployment_mode) == (1, 3, 2, 2, "concurrency", "Serverless")


def test_default_choices_size_the_replica_range_to_the_load() -> None:
    prof = _profile()
    low = default_choices("cloud-only", prof, 10.0)
    high = default_choices("cloud-only", prof, 1000.0)  # 3 ms each: 1000 req/s needs ceil(3 / 0.7) = 5
    assert {c.container_concurrency for c in low} == {1, 2}
    assert max(c.max_replicas for c in high) == 10 and {c.min_replicas for c in high} == {1, 5}
    assert {c.container_concurrency for c in default_choices("cloud-batched", prof, 10.0)} == {8, 16}
    assert default_choices("edge-only", prof, 10.0) == []


def test_without_a_rate_the_plan_must_hold_at_every_default_rate() -> None:
    result = plan(LAN, 200.0, None, {"syn": _profile()}, _prices(0.01, 1e6), duration_s=10.0, model="syn")
    assert result.rates == [5.0, 20.0, 80.0] and result.meets_slo


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"slo_p99_ms": 0.0}, "p99 SLO must be > 0"),
    ({"rate": -1.0}, "rate must be > 0"),
    ({"model": "other"}, "model 'other' has no placement profile"),
], ids=["slo", "rate", "model"])
def test_bad_plan_inputs_raise_plan_error(kwargs: dict, expected: str) -> None:
    args = {"slo_p99_ms": 200.0, "rate": 10.0, **kwargs}
    with pytest.raises(PlanError, match=expected):
        plan(LAN, args["slo_p99_ms"], args["rate"], {"syn": _profile()}, model=kwargs.get("model"))


def test_cli_plan_prints_the_answer_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "profiles.json"
    f.write_text(json.dumps({"profiles": [_profile().model_dump(mode="json")]}))
    code = main(["bench", "plan", "--link", "lan", "--slo-p99-ms", "200", "--rate", "5", "--profiles", str(f),
                 "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["placement"] in ("edge-only", "cloud-only", "split", "cloud-batched") and out["meets_slo"]
    assert set(out) >= {"why", "p99_ms", "cost_per_1000", "inference_service", "candidates"}
    assert all(c["p99_ms"] is None or not math.isinf(c["p99_ms"]) for c in out["candidates"])


def test_cli_plan_prints_the_answer_and_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "profiles.json"
    f.write_text(json.dumps({"profiles": [_profile().model_dump(mode="json")]}))
    assert main(["bench", "plan", "--link", "4g", "--slo-p99-ms", "200", "--rate", "5", "--profiles", str(f)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("plan: ") and "over 4g" in lines[0]
    assert any(line.startswith("  - ") for line in lines)


def test_cli_plan_refuses_an_unknown_objective_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "profiles.json"
    f.write_text(json.dumps({"profiles": [_profile().model_dump(mode="json")]}))
    code = main(["bench", "plan", "--link", "lan", "--slo-p99-ms", "200", "--profiles", str(f), "--objective", "fastest"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "objective must be one of cost, p99" in err[0] and "Traceback" not in err[0]
