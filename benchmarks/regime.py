"""The regime map: which placement wins — edge-only, cloud-only, split, cloud-batched — by p99 and by cost, across
bandwidth x RTT x load x model, simulated from measurements of this machine and spot-checked by real runs.

    python benchmarks/regime.py [--quick | --smoke]

Per model (a small one, MobileNetV2, and a deep one, ResNet-50; 64 px, 1 channel, random weights: only cost matters)
it measures: the cloud replica (a real KServe server, one thread, no CPU limit: service times at batch 1 open loop
and at batch 8, cold starts), the edge device (part 1's placement node at 1 thread and a 4x slowdown, PNG in), and
the split (every cut point's two halves timed by ONNX Runtime; the cut minimising edge x 4 + cloud + int8 bytes over
10 Mbit/s is kept, each half charged the measured server overhead). The grid is then simulated (KPA, warm start,
Poisson, 60 s per point), and at chosen points (three link profiles x two loads, smaller model) cloud-only,
cloud-batched and edge-only are run for real — replicas behind part 1's userspace link proxy, the edge node direct —
and compared with the simulator and with the planner's choice. Finally the autoscale benchmark's bursty trace is
simulated at a 10,000 req/s peak over up to 2,000 replicas under each controller (the deep model's replica profile):
the scale this machine cannot reach.

Goals: >= 100 points simulated in < 10 minutes; at >= 90% of the spot-checked points the planner's choice (asked
for the lowest p99) is within 5% of the best measured p99, and its default answer (the cheapest option meeting the
200 ms SLO) does meet it for real. --quick: a smaller grid; --smoke: tiny model, seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from _common import LoadMonitor, add_mode_flags, goal, mode_of, print_table, write_results
from _models import store_random_model

from medopt.bench.arrivals import ArrivalSpec, Segment
from medopt.bench.hybrid import Topology, png_bytes, whole_model_ms
from medopt.bench.links.profiles import default_profiles
from medopt.bench.loadgen import LoadSpec, Target, run_load
from medopt.bench.node import NodePlan
from medopt.bench.protocols import http_request
from medopt.bench.scaling.measure import measure_profile
from medopt.bench.scaling.planner import plan
from medopt.bench.scaling.profile import ServiceProfile
from medopt.bench.scaling.realrun import run_real
from medopt.bench.scaling.regime import (PlacementProfile, RegimeGrid, SplitProfile, base_scenario, batched,
                                         regime_map, replicas_needed, run_placement, warm)
from medopt.bench.scaling.report import regime_html, write_report
from medopt.bench.scaling.scenario import BURSTY_TRACE, ControllerSpec, ReplicaSpec, ScalingScenario
from medopt.bench.scaling.sim import simulate
from medopt.bench.splitplan import time_splits

SLOWDOWN = 4.0
RESPONSE_BYTES = 400  # a V2 JSON answer with two probabilities, about this size
MODES = {
    "full": {"models": ["mobilenetv2_100", "resnet50"], "size": 64, "profile_s": 10.0, "repeats": 2,
             "grid": {"bandwidth_mbit": [2, 10, 100, 1000], "rtt_ms": [1, 20, 120, 600], "rates": [5, 50, 500]},
             "duration_s": 60.0, "spot_links": ["lan", "4g", "rural-telemed"], "spot_rates": [5, 30],
             "spot_s": 20.0, "at_scale_peak": 10000.0, "at_scale_time": 1.0},
    "quick": {"models": ["mobilenetv2_100", "resnet50"], "size": 64, "profile_s": 5.0, "repeats": 1,
              "grid": {"bandwidth_mbit": [2, 100, 1000], "rtt_ms": [1, 120, 600], "rates": [5, 50, 500]},
              "duration_s": 30.0, "spot_links": ["lan", "rural-telemed"], "spot_rates": [5, 30], "spot_s": 10.0,
              "at_scale_peak": 1000.0, "at_scale_time": 0.5},
    "smoke": {"models": ["tiny_cnn"], "size": 16, "profile_s": 2.0, "repeats": 1,
              "grid": {"bandwidth_mbit": [2, 1000], "rtt_ms": [1, 600], "rates": [5]},
              "duration_s": 5.0, "spot_links": ["lan"], "spot_rates": [5], "spot_s": 3.0,
              "at_scale_peak": 100.0, "at_scale_time": 0.05},
}
SPOT_PLACEMENTS = ("cloud-only", "cloud-batched", "edge-only")
SPOT_SLO_MS = 200.0


def _edge_node(topo: Topology, onnx: Path, store: Path, described_by: str) -> str:
    return topo.node(NodePlan(name="edge", model=str(onnx), store_root=str(store), described_by=described_by,
                              threads=1, slowdown=SLOWDOWN))


def _edge_load(url: str, payload: Path, *, rate: float | None, seconds: float, seed: int) -> dict[str, Any]:
    arrival = {"kind": "poisson", "rate": rate or 1.0, "duration_s": seconds, "seed": seed}
    mode = {"mode": "open"} if rate else {"mode": "closed", "concurrency": 1}
    return run_load(LoadSpec(target=Target(url=url, protocol="raw", payload_file=str(payload), timeout_s=30),
                             arrival=arrival, warmup_requests=3, drain_s=10, **mode))


def _split(net: Any, size: int, workdir: Path, overhead_ms: float) -> SplitProfile:
    """The cut minimising edge x slowdown + cloud + int8 bytes over 10 Mbit/s, each half charged the server's
    measured per-request overhead (what a KServe replica adds on top of the ONNX Runtime call)."""
    timings = time_splits(net, (1, size, size), workdir)
    best = min(timings, key=lambda t: t.edge_ms * SLOWDOWN + t.cloud_ms + t.wire_bytes["int8"] * 8 / 10e3)
    return SplitProfile(layer=best.at, edge_ms=[best.edge_ms * SLOWDOWN + overhead_ms],
                        cloud_ms={"1": [best.cloud_ms + overhead_ms]}, bytes_up=int(best.wire_bytes["int8"]))


def _profile(name: str, m: dict[str, Any], tmp: Path, stack: contextlib.ExitStack) -> dict[str, Any]:
    """Measure one model; returns its PlacementProfile and what the spot checks need to run it for real."""
    size = m["size"]
    store, key, net = store_random_model(name, size, tmp, f"regime/{name}")
    shape = [1, 1, size, size]
    probe = measure_profile(artifact=key, store_root=store, input_shape=shape, replica=ReplicaSpec(),
                            seconds=m["profile_s"] / 2, repeats=1, model=name)
    cloud = measure_profile(artifact=key, store_root=store, input_shape=shape, replica=ReplicaSpec(),
                            batches=(1, 8), seconds=m["profile_s"], repeats=m["repeats"], model=name,
                            rate_rps=round(0.3 * 1000.0 / probe.mean_ms(), 2))
    onnx = store.parent / f"regime_{name}" / "model.onnx"
    overhead = max(0.0, cloud.mean_ms() - whole_model_ms(onnx, (1, size, size), threads=1))
    topo = Topology(stack, tmp)
    payload = tmp / f"{name}.png"
    payload.write_bytes(png_bytes(np.random.default_rng(0).integers(0, 255, (size, size), dtype=np.uint8)))
    edge_url = _edge_node(topo, onnx, store, f"regime/{name}/model.pt")
    edge = _edge_load(edge_url, payload, rate=None, seconds=m["profile_s"], seed=0)
    image_bytes = len(http_request("v2-binary", "medopt", np.zeros(shape, dtype=np.float32)).body)
    prof = PlacementProfile(model=name, cloud=cloud, edge_ms=edge["samples"]["latency_ms"], image_bytes=image_bytes,
                            response_bytes=RESPONSE_BYTES, split=_split(net, size, tmp / f"split-{name}", overhead),
                            source={"edge_slowdown": SLOWDOWN, "server_overhead_ms": overhead,
                                    "cloud_request": "v2-binary float32 tensor", "weights": "random"})
    return {"profile": prof, "store": store, "key": key, "shape": shape, "edge_url": edge_url, "payload": payload}


def _spot_scenario(placement: str, cloud: ServiceProfile, rate: float, seconds: float, seed: int) -> Any:
    sc = base_scenario(rate, duration_s=seconds, seed=seed, slo_ms=SPOT_SLO_MS)
    batch = 1
    if placement == "cloud-batched":
        batch = 8
        sc = batched(sc, batch)
    return warm(sc, replicas_needed(cloud, rate, batch))


def _spot(m: dict[str, Any], measured: dict[str, Any]) -> list[dict[str, Any]]:
    """Real runs of the spot-checked placements next to their simulation and the planner's answer."""
    prof: PlacementProfile = measured["profile"]
    links = default_profiles()
    only = {prof.model: prof.model_copy(update={"split": None})}  # split is not run for real here
    rows = []
    for i, (link_name, rate) in enumerate((ln, r) for ln in m["spot_links"] for r in m["spot_rates"]):
        link, seed = links[link_name], 50 + i
        real, sim = {}, {}
        for placement in SPOT_PLACEMENTS:
            sc = _spot_scenario(placement, prof.cloud, rate, m["spot_s"], seed)
            if placement == "edge-only":
                run = _edge_load(measured["edge_url"], measured["payload"], rate=rate, seconds=m["spot_s"], seed=seed)
            else:
                run = run_real(sc, artifact=measured["key"], store_root=measured["store"],
                               input_shape=measured["shape"], link=link)
            real[placement] = float("inf") if run["errors"] else run["latency"]["p99_ms"]  # failures: infinitely slow
            sim[placement] = run_placement(placement, prof, link, sc, seed=seed, warm_start=False)["p99_ms"]
        asked = {"duration_s": max(30.0, m["spot_s"]), "seed": seed}
        chosen = plan(link, SPOT_SLO_MS, rate, only, objective="p99", **asked).placement
        cheapest = plan(link, SPOT_SLO_MS, rate, only, **asked).placement
        best = min(real.values())
        rows.append({"link": link_name, "rate": rate, "real_p99_ms": real, "sim_p99_ms": sim, "planner": chosen,
                     "planner_real_p99_ms": real[chosen], "best_real_p99_ms": best,
                     "within_5pct": real[chosen] <= 1.05 * best, "planner_cost_first": cheapest,
                     "cost_first_meets_slo": real[cheapest] <= SPOT_SLO_MS,
                     "sim_best": min(sim, key=sim.get), "real_best": min(real, key=real.get)})
        print(f"spot {link_name} @ {rate}/s: real {real}, sim {sim}, planner (p99) {chosen}, planner (cost) "
              f"{cheapest}", file=sys.stderr)
    return rows


def _at_scale(cloud: ServiceProfile, peak_rps: float, scale: float) -> dict[str, Any]:
    """Where this machine cannot go: the bursty trace with a peak of ``peak_rps`` over up to 2,000 replicas, under
    each controller, simulated with the measured replica profile (the simulator validated by autoscale.py)."""
    base = peak_rps / max(k for _, k in BURSTY_TRACE)
    arrival = ArrivalSpec(kind="step", seed=3, segments=[Segment(seconds=max(1.0, s * scale), rate=round(k * base, 2))
                                                         for s, k in BURSTY_TRACE])
    fixed_n = replicas_needed(cloud, peak_rps)
    slo = round(8 * cloud.mean_ms(), 1)
    out: dict[str, Any] = {"peak_rps": peak_rps, "slo_ms": slo, "fixed_replicas": fixed_n, "controllers": {}}
    specs = {"fixed-peak": ControllerSpec(kind="fixed", settings={"replicas": fixed_n}), "kpa": ControllerSpec(),
             "hpa": ControllerSpec(kind="hpa", settings={"metric": "cpu", "target_utilization": 0.8}),
             "slo": ControllerSpec(kind="slo")}
    for name, spec in specs.items():
        lo = fixed_n if name == "fixed-peak" else 1
        sc = ScalingScenario(name=f"at-scale-{name}", arrival=arrival, controller=spec, min_replicas=lo,
                             max_replicas=2000, initial_replicas=max(lo, replicas_needed(cloud, base * 0.5)),
                             container_concurrency=1, queue_limit=100_000, slo_ms=slo, timeout_s=30)
        started = time.perf_counter()
        r = simulate(sc, cloud, seed=0)
        out["controllers"][name] = {"slo_attainment": r["slo_attainment"], "replica_seconds": r["replica_seconds"],
                                    "max_ready": r["max_ready"], "p99_ms": r["latency"]["p99_ms"],
                                    "requests": r["requests"], "errors": r["errors"], "cold_starts": r["cold_starts"],
                                    "sim_wall_s": round(time.perf_counter() - started, 2)}
    return out


def _claims(points: list[dict[str, Any]], table: list[dict[str, Any]]) -> dict[str, Any]:
    """Win counts that test the seed study's two claims."""
    constrained = [w for w in table if w["bandwidth_mbit"] <= 10 and w["rtt_ms"] >= 120]
    fast = [w for w in table if w["bandwidth_mbit"] >= 100 and w["rtt_ms"] <= 20]
    high_load = [w for w in table if w["rate"] == max(p["rate"] for p in points)]
    count = lambda rows, key: dict(Counter(str(r[key]) for r in rows))  # noqa: E731
    return {"constrained_links_winner_by_p99": count(constrained, "by_p99"),
            "constrained_links_winner_by_cost": count(constrained, "by_cost"),
            "fast_links_winner_by_p99": count(fast, "by_p99"), "fast_links_winner_by_cost": count(fast, "by_cost"),
            "highest_load_winner_by_p99": count(high_load, "by_p99"),
            "highest_load_winner_by_cost": count(high_load, "by_cost"),
            "by_model_winner_by_p99": {mdl: count([w for w in table if w["model"] == mdl], "by_p99")
                                       for mdl in sorted({w["model"] for w in table})}}


def _write_profiles(path: Path, profiles: dict[str, PlacementProfile]) -> None:
    """The measured profiles in the shape ``medopt bench plan --profiles`` reads."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"profiles": [p.model_dump(mode="json") for p in profiles.values()]}, indent=1))
    tmp.replace(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_mode_flags(parser)
    args = parser.parse_args()
    mode = mode_of(args)
    m = MODES[mode]
    with LoadMonitor(own_load=1.5) as monitor, tempfile.TemporaryDirectory(prefix="medopt-regime-") as tmp_name, \
            contextlib.ExitStack() as stack:
        tmp = Path(tmp_name)
        measured = {name: _profile(name, m, tmp, stack) for name in m["models"]}
        profiles = {name: v["profile"] for name, v in measured.items()}
        started = time.perf_counter()
        grid = RegimeGrid(duration_s=m["duration_s"], **m["grid"])
        regime = regime_map(profiles, grid, seed=0)
        grid_wall = time.perf_counter() - started
        at_scale = _at_scale(profiles[m["models"][-1]].cloud, m["at_scale_peak"], m["at_scale_time"])
        spots = _spot(m, measured[m["models"][0]])
    n = regime["timing"]["points"]
    share = float(np.mean([r["within_5pct"] for r in spots]))
    sim_right = float(np.mean([r["sim_best"] == r["real_best"] for r in spots]))
    cost_ok = float(np.mean([r["cost_first_meets_slo"] for r in spots]))
    goals = [goal("grid points simulated", n, ">= 100", n >= 100),
             goal("grid wall time (s)", round(grid_wall, 1), "< 600", grid_wall < 600),
             goal("spot checks: planner's choice within 5% of the best measured p99", round(share, 4), ">= 0.90",
                  share >= 0.90),
             goal("spot checks: simulator names the measured p99 winner", round(sim_right, 4), "reported", True),
             goal(f"spot checks: the cheapest plan (default objective) meets the {SPOT_SLO_MS:g} ms p99 SLO for real",
                  round(cost_ok, 4), ">= 0.90", cost_ok >= 0.90)]
    print_table(goals, ["name", "value", "target", "met"])
    payload = {"profiles": {k: v.model_dump() for k, v in profiles.items()}, "grid": regime["grid"],
               "prices": regime["prices"], "points": regime["points"], "winners": regime["winners"],
               "timing": {**regime["timing"], "grid_wall_s": grid_wall}, "claims": _claims(regime["points"],
                                                                                            regime["winners"]),
               "spot_checks": spots, "at_scale": at_scale, "goals": goals}
    path = write_results("regime", payload, mode=mode, load=monitor)
    _write_profiles(path.with_name(path.name.replace(".json", ".profiles.json")), profiles)
    print(path)
    print(write_report(regime_html(json.loads(path.read_text())), path.with_suffix(".html")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
