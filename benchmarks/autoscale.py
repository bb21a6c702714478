"""Autoscaling over real replicas: KPA, HPA, medopt's SLO controller and fixed peak provisioning on one bursty trace,
and the simulator checked against every real run.

    python benchmarks/autoscale.py [--quick | --smoke]

The replicas are real KServe model servers (``python -m medopt.serve``, one inference thread, ResNet-18 at 64 px,
ONNX Runtime fp32) behind medopt's router, each under a CPU limit of 0.25 core (a cgroup CFS quota, as a pod's
``limits.cpu``), so capacity grows with the replica count on this 2-core machine. First the replica's service-time
distribution (without a limit: the CPU a request needs) and cold starts are measured (closed loop, one replica,
fresh processes; open-loop Poisson at 30% of one unthrottled replica's capacity, service time taken by the router
from dispatch to response); the simulator applies the limit as the kernel does (a quota per 100 ms CFS period, on
the replica's measured CPU share of each service time). The bursty trace is then built
from that capacity (rates as multiples of one replica's throughput, Poisson within steps), so it means the same on a
fast and a slow CPU. Controllers run with their real defaults (Knative: 60 s stable window, 2 s ticks; HPA: 15 s sync,
300 s scale-down stabilization, CPU 80% of the limit). Fixed provisioning uses the replicas the peak needs at KPA's
70% target utilisation.

Goals: KPA and the SLO controller keep >= 99% of requests within the SLO with >= 30% fewer replica-seconds than fixed;
the SLO controller uses fewer replica-seconds than KPA at no lower attainment; the first request after a scale from
zero succeeds. Simulator fidelity: each real run (the four above plus six short ones: utilisations, a gamma burst, a
scaled-clock KPA) is replayed by the simulator with the same scenario, seed, controller and the measured profile:
median error of p50 and p99 <= 5%, worst <= 10%, replica count within +-1 of the real one >= 95% of the time.
--quick: shorter trace; --smoke: tiny model, seconds per run.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from _common import LoadMonitor, add_mode_flags, goal, mode_of, print_table, write_results
from _models import store_random_model

from medopt.bench.arrivals import ArrivalSpec, Segment
from medopt.bench.scaling.measure import measure_profile
from medopt.bench.scaling.profile import ServiceProfile
from medopt.bench.scaling.realrun import run_real
from medopt.bench.scaling.report import autoscale_html, write_report
from medopt.bench.scaling.scenario import BURSTY_TRACE, ControllerSpec, ReplicaSpec, ScalingScenario
from medopt.bench.scaling.sim import simulate

KEY = "bench/autoscale/model.onnx"
MODES = {
    "full": {"model": "resnet18", "size": 64, "cpu": 0.25, "profile_s": 15.0, "repeats": 3, "trace_scale": 1.0,
             "short_s": 45.0},
    "quick": {"model": "resnet18", "size": 64, "cpu": 0.25, "profile_s": 8.0, "repeats": 2, "trace_scale": 0.5,
              "short_s": 25.0},
    # smoke: the script's every path, not its numbers: a low two-step trace (2 replicas at the peak), no HPA, no
    # short validation runs
    "smoke": {"model": "tiny_cnn", "size": 16, "cpu": 0.25, "profile_s": 3.0, "repeats": 1, "trace_scale": 0.05,
              "short_s": 4.0, "short_only": (), "main_only": ("fixed-peak", "kpa", "slo"),
              "trace": [(60, 0.5), (60, 1.4), (60, 0.5)]},
}


def _capacity(profile: ServiceProfile, cpu_limit: float) -> float:
    """Requests/s one saturated replica serves: its limit's share of a core over the unthrottled service time."""
    share = profile.cpu_share()
    return 1000.0 / (profile.mean_ms() * ((1 - share) + share / min(1.0, cpu_limit)))


def _trace(cap: float, m: dict[str, Any], seed: int) -> ArrivalSpec:
    return ArrivalSpec(kind="step", seed=seed, segments=[Segment(seconds=max(1.0, s * m["trace_scale"]),
                                                                 rate=round(k * cap, 3)) for s, k in _steps(m)])


def _steps(m: dict[str, Any]) -> list[tuple[float, float]]:
    return list(m.get("trace", BURSTY_TRACE))


def _scenario(name: str, arrival: ArrivalSpec, controller: ControllerSpec, m: dict[str, Any], slo_ms: float, *,
              lo: int, hi: int, initial: int, sample_s: float = 1.0) -> ScalingScenario:
    return ScalingScenario(name=name, arrival=arrival, controller=controller, replica=ReplicaSpec(cpu_limit=m["cpu"]),
                           min_replicas=lo, max_replicas=hi, initial_replicas=initial, container_concurrency=1,
                           queue_limit=1000, slo_ms=slo_ms, timeout_s=30, sample_s=sample_s)


def _main_runs(m: dict[str, Any], cap: float, slo_ms: float, time_scale: float) -> list[ScalingScenario]:
    fixed_n = math.ceil(max(k for _, k in _steps(m)) / 0.7)
    trace = _trace(cap, m, seed=7)
    hi = fixed_n + 1
    sample = 1.0 * time_scale
    runs = [
        _scenario("fixed-peak", trace, ControllerSpec(kind="fixed", settings={"replicas": fixed_n}), m, slo_ms,
                  lo=fixed_n, hi=fixed_n, initial=fixed_n, sample_s=sample),
        _scenario("kpa", trace, ControllerSpec(kind="kpa"), m, slo_ms, lo=1, hi=hi, initial=1, sample_s=sample),
        _scenario("hpa", trace, ControllerSpec(kind="hpa", settings={"metric": "cpu", "target_utilization": 0.8}),
                  m, slo_ms, lo=1, hi=hi, initial=1, sample_s=sample),
        _scenario("slo", trace, ControllerSpec(kind="slo"), m, slo_ms, lo=1, hi=hi, initial=1, sample_s=sample),
    ]
    only = m.get("main_only")
    return [r for r in runs if only is None or r.name in only]


def _short_runs(m: dict[str, Any], cap: float, slo_ms: float) -> list[ScalingScenario]:
    d = m["short_s"]
    fixed = ControllerSpec(kind="fixed")
    poisson = [(f"fixed1-rho{int(r * 100)}", ArrivalSpec(kind="poisson", rate=round(r * cap, 3), duration_s=d,
                                                         seed=11 + i), 1) for i, r in enumerate((0.3, 0.6, 0.85))]
    runs = [_scenario(n, a, fixed, m, slo_ms, lo=k, hi=k, initial=k) for n, a, k in poisson]
    runs.append(_scenario("fixed3-rho70", ArrivalSpec(kind="poisson", rate=round(2.1 * cap, 3), duration_s=d, seed=21),
                          fixed, m, slo_ms, lo=3, hi=3, initial=3))
    runs.append(_scenario("fixed2-gamma-cv3", ArrivalSpec(kind="gamma", rate=round(1.0 * cap, 3), cv=3.0, duration_s=d,
                                                          seed=22), fixed, m, slo_ms, lo=2, hi=2, initial=2))
    step = ArrivalSpec(kind="step", seed=23, segments=[Segment(seconds=d / 3, rate=round(0.5 * cap, 3)),
                                                       Segment(seconds=d / 3, rate=round(2.2 * cap, 3)),
                                                       Segment(seconds=d / 3, rate=round(0.5 * cap, 3))])
    runs.append(_scenario("kpa-step-clock0.1", step, ControllerSpec(kind="kpa"), m, slo_ms, lo=1, hi=4, initial=1,
                          sample_s=0.1))
    only = m.get("short_only")
    return [r for r in runs if only is None or r.name in only]


def _rel(sim: float, real: float) -> float:
    return abs(sim - real) / real if real else float("inf")


def _ready_within_one(real: list[dict[str, Any]], sim: list[dict[str, Any]]) -> float:
    """Share of the real run's samples at which the simulated ready count (at the same time) is within +-1."""
    if not real or not sim:
        return 0.0
    st = np.asarray([p["t"] for p in sim])
    sr = np.asarray([p["ready"] for p in sim])
    hits = [abs(sr[max(0, int(np.searchsorted(st, p["t"], side="right")) - 1)] - p["ready"]) <= 1 for p in real
            if p["t"] >= 0]
    return float(np.mean(hits)) if hits else 0.0


def _validate(real: dict[str, Any], scenario: ScalingScenario, profile: ServiceProfile, time_scale: float
              ) -> dict[str, Any]:
    sim = simulate(scenario, profile, seed=0, time_scale=time_scale)
    return {"scenario": scenario.name, "real_p50_ms": real["latency"]["p50_ms"], "sim_p50_ms": sim["latency"]["p50_ms"],
            "real_p99_ms": real["latency"]["p99_ms"], "sim_p99_ms": sim["latency"]["p99_ms"],
            "p50_error": _rel(sim["latency"]["p50_ms"], real["latency"]["p50_ms"]),
            "p99_error": _rel(sim["latency"]["p99_ms"], real["latency"]["p99_ms"]),
            "ready_within_1": _ready_within_one(real["trajectory"], sim["trajectory"]),
            "real_replica_seconds": real["replica_seconds"], "sim_replica_seconds": sim["replica_seconds"],
            "real_attainment": real["slo_attainment"], "sim_attainment": sim["slo_attainment"],
            "sim_trajectory": [{k: p[k] for k in ("t", "ready", "desired")} for p in sim["trajectory"]]}


def _compact(run: dict[str, Any]) -> dict[str, Any]:
    keep = ("scenario", "controller", "requests", "ok", "errors", "latency", "slo_ms", "slo_attainment",
            "replica_seconds", "max_ready", "cold_starts", "cold_start_s", "died", "rejected", "achieved_rps",
            "offered_rps")
    out = {k: run[k] for k in keep if k in run}
    out["trajectory"] = [{k: p[k] for k in ("t", "ready", "starting", "draining", "desired", "queued", "concurrency",
                                            "mode")} for p in run["trajectory"]]
    return out


def _from_zero(m: dict[str, Any], slo_ms: float, store: Path) -> dict[str, Any]:
    """KPA with minReplicas 0 at its real defaults: no replica at the start, three requests 0.5 s apart."""
    sc = _scenario("kpa-from-zero", ArrivalSpec(kind="trace", trace=[1.0, 1.5, 2.0]), ControllerSpec(kind="kpa"), m,
                   slo_ms, lo=0, hi=1, initial=0)
    run = run_real(sc, artifact=KEY, store_root=store, input_shape=[1, 1, m["size"], m["size"]])
    return {"errors": run["errors"], "ok": run["ok"], "requests": run["requests"],
            "first_latency_ms": run["samples"]["latency_ms"][0], "cold_start_s": run["cold_start_s"],
            "first_ok": bool(run["samples"]["ok"][0])}


def _goals(by_name: dict[str, dict[str, Any]], table: list[dict[str, Any]], zero: dict[str, Any]) -> list[dict]:
    fixed = by_name["fixed-peak"]["replica_seconds"]
    goals = []
    for name in ("kpa", "slo"):
        run = by_name[name]
        saving = 1 - run["replica_seconds"] / fixed
        goals.append(goal(f"{name}: requests within the SLO", round(run["slo_attainment"], 4), ">= 0.99",
                          run["slo_attainment"] >= 0.99))
        goals.append(goal(f"{name}: replica-seconds saved vs fixed peak", round(saving, 4), ">= 0.30", saving >= 0.30))
    kpa, slo = by_name["kpa"], by_name["slo"]
    goals.append(goal("slo vs kpa: replica-seconds ratio at no lower attainment",
                      round(slo["replica_seconds"] / kpa["replica_seconds"], 4), "< 1 with attainment >= kpa's",
                      slo["replica_seconds"] < kpa["replica_seconds"] and slo["slo_attainment"] >= kpa["slo_attainment"]))
    goals.append(goal("first request after scale from zero succeeds", zero["first_ok"] and not zero["errors"],
                      "true", zero["first_ok"] and not zero["errors"]))
    errs = sorted([r["p50_error"] for r in table] + [r["p99_error"] for r in table])
    med, worst = float(np.median(errs)), float(max(errs))
    share = float(np.mean([r["ready_within_1"] for r in table]))
    goals.append(goal("simulator: median error of p50 and p99", round(med, 4), "<= 0.05", med <= 0.05))
    goals.append(goal("simulator: worst error of p50 and p99", round(worst, 4), "<= 0.10", worst <= 0.10))
    goals.append(goal("simulator: replica count within +-1 of real", round(share, 4), ">= 0.95", share >= 0.95))
    return goals


def _checkpoint(path: Path, profile: ServiceProfile, runs: dict[str, Any], table: list[dict[str, Any]]) -> None:
    """The runs so far, so a failure late in a 30-minute run loses nothing measured."""
    path.write_text(json.dumps({"profile": profile.model_dump(), "runs": {n: _compact(r) for n, r in runs.items()},
                                "validation": table}, default=float))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_mode_flags(parser)
    args = parser.parse_args()
    mode = mode_of(args)
    m = MODES[mode]
    shape = [1, 1, m["size"], m["size"]]
    time_scale = 0.1 if mode == "smoke" else 1.0
    with LoadMonitor(own_load=1.5) as monitor, tempfile.TemporaryDirectory(prefix="medopt-autoscale-") as tmp_name:
        tmp = Path(tmp_name)
        store, _, _ = store_random_model(m["model"], m["size"], tmp, KEY.rsplit("/", 1)[0])
        probe = measure_profile(artifact=KEY, store_root=store, input_shape=shape, seconds=m["profile_s"] / 3,
                                replica=ReplicaSpec(), repeats=1, model=m["model"])
        profile = measure_profile(artifact=KEY, store_root=store, input_shape=shape, seconds=m["profile_s"],
                                  replica=ReplicaSpec(), repeats=m["repeats"], model=m["model"],
                                  rate_rps=round(0.3 * 1000.0 / probe.mean_ms(), 2))
        cap = _capacity(profile, m["cpu"])
        slo_ms = round(8 * 1000.0 / cap, 1)
        print(f"replica: {profile.mean_ms():.1f} ms mean unthrottled service, {cap:.1f} req/s under the limit, cold start "
              f"{profile.mean_cold_start_s():.1f} s; SLO p99 {slo_ms} ms", file=sys.stderr)
        runs: dict[str, dict[str, Any]] = {}
        table: list[dict[str, Any]] = []
        scenarios = [(s, time_scale) for s in _main_runs(m, cap, slo_ms, time_scale)]
        scenarios += [(s, 0.1 if s.name.endswith("clock0.1") else time_scale) for s in _short_runs(m, cap, slo_ms)]
        for scenario, scale in scenarios:
            run = run_real(scenario, artifact=KEY, store_root=store, input_shape=shape, profile=profile,
                           time_scale=scale)
            runs[scenario.name] = run
            table.append(_validate(run, scenario, profile, scale))
            _checkpoint(tmp.parent / "medopt-autoscale-partial.json", profile, runs, table)
            print(f"{scenario.name}: p99 {run['latency']['p99_ms']} ms, attainment {run['slo_attainment']:.4f}, "
                  f"replica-s {run['replica_seconds']:.0f}, sim p99 {table[-1]['sim_p99_ms']}", file=sys.stderr)
        zero = _from_zero(m, slo_ms, store)
    goals = _goals(runs, table, zero)
    print_table(goals, ["name", "value", "target", "met"])
    main_names = [n for n in ("fixed-peak", "kpa", "hpa", "slo") if n in runs]
    payload = {"model": m["model"], "input_px": m["size"], "cpu_limit": m["cpu"], "slo_ms": slo_ms,
               "replica_capacity_rps": cap, "trace": [{"seconds": s * m["trace_scale"], "capacity_multiple": k}
                                                      for s, k in _steps(m)],
               "profile": profile.model_dump(), "controllers": {n: _compact(runs[n]) for n in main_names},
               "short_runs": {n: _compact(r) for n, r in runs.items() if n not in main_names},
               "validation": table, "scale_from_zero": zero, "goals": goals}
    path = write_results("autoscale", payload, mode=mode, load=monitor)
    print(path)
    print(write_report(autoscale_html(json.loads(path.read_text())), path.with_suffix(".html")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
