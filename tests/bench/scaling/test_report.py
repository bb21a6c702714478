"""The autoscale and regime HTML reports render from small synthetic results, escape text and write atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medopt.bench.scaling.report import (autoscale_html, panic_intervals, regime_html, rolling_p99,
                                         write_report)

EVIL = "<script>alert(1)</script>"


def _traj(n: int = 8, panic: tuple[int, int] = (3, 5)) -> list[dict[str, Any]]:
    return [{"t": float(i), "ready": 1 + (i >= 2), "starting": int(i == 1), "draining": 0, "desired": 2,
             "queued": max(0, 4 - i), "concurrency": 1, "mode": "panic" if panic[0] <= i < panic[1] else "stable"}
            for i in range(n)]


def _run(**extra: Any) -> dict[str, Any]:
    run = {"trajectory": _traj(), "latency": {"p50_ms": 12.0, "p99_ms": 80.0}, "slo_attainment": 0.995,
           "replica_seconds": 14.0, "cold_starts": 1, "cold_start_s": 1.5, "errors": 0}
    run.update(extra)
    return run


def _autoscale() -> dict[str, Any]:
    samples = {"scheduled_s": [i * 0.5 for i in range(40)], "latency_ms": [10.0 + i for i in range(40)],
               "ok": [i != 7 for i in range(40)]}
    validation = [{"scenario": name, "real_p50_ms": 12.0, "sim_p50_ms": 12.5, "real_p99_ms": 80.0, "sim_p99_ms": 84.0,
                   "p50_error": 0.04, "p99_error": 0.05, "ready_within_1": 1.0, "real_replica_seconds": 14.0,
                   "sim_replica_seconds": 15.0, "real_attainment": 0.99, "sim_attainment": 0.98,
                   "sim_trajectory": [{"t": float(i), "ready": 1, "desired": 1} for i in range(5)]}
                  for name in ("kpa", EVIL)]
    return {"benchmark": "autoscale", "mode": "smoke", "fingerprint": {"cpu_model": "test cpu", "cpu_count": 2},
            "slo_ms": 200.0, "replica_capacity_rps": 9.5, "trace": [{"seconds": 6.0, "capacity_multiple": 0.5}],
            "controllers": {"fixed-peak": _run(), "kpa": _run(samples=samples), "hpa": _run(), "slo": _run()},
            "short_runs": {EVIL: _run()}, "validation": validation,
            "scale_from_zero": {"errors": 0, "ok": 3, "requests": 3, "first_latency_ms": 1800.0, "cold_start_s": 1.7,
                                "first_ok": True},
            "goals": [{"name": "kpa: requests within the SLO", "value": 0.995, "target": ">= 0.99", "met": True},
                      {"name": "simulator: worst error", "value": 0.2, "target": "<= 0.10", "met": False}]}


def _regime() -> dict[str, Any]:
    winners = [{"bandwidth_mbit": bw, "rtt_ms": rtt, "rate": 5.0, "model": "tiny_cnn",
                "by_p99": "edge-only" if rtt > 100 else "cloud-only",
                "by_cost": None if (bw, rtt) == (2, 600) else "cloud-batched",
                "p99_ms": 150.0 if (bw, rtt) != (2, 600) else float("inf"),
                "cost_per_1000": None if (bw, rtt) == (2, 600) else 0.0123}
               for bw in (2, 1000) for rtt in (1, 600)]
    spot = [{"link": EVIL, "rate": 5, "real_p99_ms": {"cloud-only": 40.0, "edge-only": float("inf")},
             "sim_p99_ms": {"cloud-only": 42.0, "edge-only": 300.0}, "planner": "cloud-only",
             "planner_real_p99_ms": 40.0, "best_real_p99_ms": 40.0, "within_5pct": True, "sim_best": "cloud-only",
             "real_best": "cloud-only"}]
    claims = {"fast_links_winner_by_p99": {"cloud-only": 1},
              "by_model_winner_by_p99": {"tiny_cnn": {"cloud-only": 2, "edge-only": 2}}}
    return {"benchmark": "regime", "mode": "smoke", "grid": {"slo_ms": 200.0, "duration_s": 5.0},
            "timing": {"points": 12, "grid_wall_s": 0.4}, "points": [], "winners": winners, "claims": claims,
            "spot_checks": spot, "goals": [{"name": "grid points simulated", "value": 12, "target": ">= 100",
                                            "met": False}]}


def test_autoscale_report_sections_figures_and_escaping() -> None:
    out = autoscale_html(_autoscale())
    for title in ("Goals", "Controllers over time", "Controller comparison", "Simulator validation",
                  "Scale from zero", "Short runs"):
        assert f"<h2>{title}</h2>" in out or f"<h3>{title}</h3>" in out
    assert out.count("<img") == 4 + 1  # one per controller, one small-multiples validation figure
    assert "<script>" not in out and "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert "class='missed'" in out and "class='met'" in out
    assert "1800.0" in out


def test_autoscale_report_tolerates_missing_optional_keys() -> None:
    result = _autoscale()
    del result["controllers"]["kpa"]["samples"], result["scale_from_zero"], result["fingerprint"]
    result["short_runs"] = {}
    result["controllers"]["hpa"]["trajectory"][0]["desired"] = None
    out = autoscale_html(result)
    assert out.count("<img") == 5 and "not measured" in out
    assert autoscale_html({}).count("<img") == 0


def test_panic_intervals_and_rolling_p99() -> None:
    assert panic_intervals(_traj()) == [(3.0, 5.0)]
    assert panic_intervals(_traj(panic=(6, 99))) == [(6.0, 7.0)]
    ends, p99 = rolling_p99({"scheduled_s": [0.0, 5.0, 12.0, 19.0], "latency_ms": [1.0, 2.0, 3.0, 4.0],
                             "ok": [True, True, False, True]})
    assert ends.size == p99.size > 0 and float(p99[-1]) < 4.01
    assert rolling_p99({})[0].size == 0


def test_regime_report_maps_claims_and_spot_checks() -> None:
    out = regime_html(_regime())
    for title in ("Goals", "Regime maps", "Claims", "Spot checks"):
        assert f"<h2>{title}</h2>" in out
    assert out.count("<img") == 1  # one (model, rate) pair: both maps in one figure
    assert "<script>" not in out and "&lt;script&gt;" in out
    assert "by model winner by p99" in out and "tiny_cnn: cloud-only: 2" in out
    assert "∞" in out


def test_regime_report_one_figure_per_model_and_rate() -> None:
    result = _regime()
    result["winners"] += [{**w, "rate": 50.0} for w in result["winners"]]
    assert regime_html(result).count("<img") == 2
    assert "no grid points" in regime_html({}) and "At scale" not in regime_html({})


def test_regime_report_at_scale_table() -> None:
    result = _regime()
    result["at_scale"] = {"peak_rps": 100.0, "slo_ms": 80.0, "fixed_replicas": 9,
                          "controllers": {"kpa": {"slo_attainment": 0.99, "replica_seconds": 50.0, "max_ready": 8,
                                                  "p99_ms": 70.0, "requests": 900, "errors": 0, "cold_starts": 7,
                                                  "sim_wall_s": 0.3}}}
    out = regime_html(result)
    assert "<h2>At scale (simulated)</h2>" in out and "99.00%" in out


def test_write_report_is_atomic(tmp_path: Path) -> None:
    target = tmp_path / "out" / "autoscale.smoke.html"
    html_text = autoscale_html(json.loads(json.dumps(_autoscale())))
    assert write_report(html_text, target) == target
    assert target.read_text(encoding="utf-8") == html_text
    write_report("<p>again</p>", target)
    assert target.read_text(encoding="utf-8") == "<p>again</p>"
    assert [p.name for p in target.parent.iterdir()] == [target.name]
