"""Hybrid edge/cloud evaluation: the study's "split cuts mean response time by 27%" claim tested on this machine.

    python benchmarks/hybrid.py [--quick | --smoke] [--links rural-telemed lan]

Runs the real pipeline in-process (data -> train -> compress -> ... -> bench) on synthetic lesion images at a
native 128 px (PneumoniaMNIST here is 28 px, too small for a link to matter), with ResNet-18 trained from scratch
and the compress stage's int8 choice as the optimized model. The bench step then measures, per link profile, five
placements — cloud-only fp32, cloud-only optimized, edge-only optimized (edge = one thread, 4x slower than one
core), edge->cloud split at the Neurosurgeon-chosen layer and codec, cloud-only with JPEG input — each over the
userspace link proxy, open-loop Poisson load, interleaved windows (round-robin, order rotated), medians of the
per-window mean and p99 with bootstrap CIs and paired reductions against cloud-only.

Also measured here, in the same run: the load generator's accuracy (achieved vs target rate up to the capacity of a
cloud node, measured first by the Offline scenario), a deliberate 200 ms stall seen by open vs closed loop, the
SingleStream/Server/Offline scenarios of one node, and every link profile's calibration (RTT, goodput, loss).
--quick: shorter windows and training; --smoke: tiny model at 32 px, no compress stage (the optimized
placements then run the fp32 model, which the results say), one link, seconds per stage.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import LoadMonitor, add_mode_flags, goal, mode_of, print_table, write_results

ALL_PROFILES = ("lan", "hospital-wan", "4g", "rural-telemed", "satellite")
MODES = {
    "full": {"size": 128, "samples": 800, "model": "resnet18", "epochs": 6, "window": 10.0, "repeats": 5,
             "rate": 2.0, "acc_images": 64, "lg_window": 8.0, "smoke": False},
    "quick": {"size": 128, "samples": 400, "model": "resnet18", "epochs": 2, "window": 4.0, "repeats": 3,
              "rate": 2.0, "acc_images": 32, "lg_window": 4.0, "smoke": False},
    "smoke": {"size": 32, "samples": 120, "model": "tiny_cnn", "epochs": 1, "window": 1.0, "repeats": 2,
              "rate": 4.0, "acc_images": 8, "lg_window": 1.5, "smoke": True},
}


def _overrides(m: dict[str, Any], args: argparse.Namespace, tmp: Path) -> list[str]:
    links = json.dumps(args.links)
    return [
        "runner=inprocess", "data.source=synthetic", f"data.synthetic.num_samples={m['samples']}",
        f"data.synthetic.image_size={m['size']}", "data.synthetic.num_classes=2", "data.synthetic.noise=0.15",
        f"data.preprocess.image_size={m['size']}", f"model.name={m['model']}", f"train.epochs={m['epochs']}",
        f"train.scheduler.t0={m['epochs']}", "train.batch_size=32", f"compress.enabled={not m['smoke']}",
        "compress.recipes=[int8-static]", "compress.pt2e_compile=false", "evaluate.bootstrap_samples=50",
        "evaluate.latency_runs=3", "evaluate.latency_batch_sizes=[1]", "bench.enabled=true", f"bench.links={links}",
        f"bench.window_s={m['window']}", f"bench.repeats={m['repeats']}", f"bench.rate_rps={m['rate']}",
        f"bench.accuracy_images={m['acc_images']}", f"output_dir={tmp / 'runs'}", f"store.root={tmp / 'store'}",
    ]


def _keys(store: Any, run_id: str) -> dict[str, str]:
    keys = store.list(f"runs/{run_id}/")
    model = next(k for k in keys if "/train/" in k and store.manifest(k).kind == "model/pytorch")
    data = next(k for k in keys if "/data/" in k and store.manifest(k).kind.startswith("dataset"))
    return {"model": model, "dataset": data}


def _loadgen_checks(models: Any, m: dict[str, Any], tmp: Path) -> dict[str, Any]:
    """Capacity (Offline), achieved-vs-target up to it, SingleStream/Server, and the 200 ms stall, on one node."""
    from medopt.bench import scenarios
    from medopt.bench.hybrid import Topology, _plan
    from medopt.bench.loadgen import LoadSpec, Target, run_load

    payload = tmp / "payload.png"
    out: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        topo = Topology(stack, tmp)
        url = topo.node(_plan("loadgen-check", models, model=str(models.fp32), threads=1))
        stalled = topo.node(_plan("stall-check", models, model=str(models.fp32), threads=1, stall_at_s=1.0,
                                  stall_ms=200.0))
        target = Target(url=url, protocol="raw", payload_file=str(payload), timeout_s=10.0)
        capacity = scenarios.offline(target, concurrency=4, duration_s=m["lg_window"])["samples_per_s"]
        out["offline_samples_per_s"] = capacity
        out["single_stream_p90_ms"] = scenarios.single_stream(target, duration_s=m["lg_window"])["p90_ms"]
        rates = []
        for fraction in (0.5, 0.9) if m["smoke"] else (0.25, 0.5, 0.75, 0.9):
            rate = fraction * capacity
            r = run_load(LoadSpec(target=target, keep_samples=False, drain_s=3.0,
                                  arrival={"kind": "poisson", "rate": rate, "duration_s": m["lg_window"] * 2}))
            rates.append({"fraction_of_capacity": fraction, "target_rps": rate, "achieved_rps": r["achieved_rps"],
                          "relative_error": r["achieved_rps"] / rate - 1.0, "p99_ms": r["latency"]["p99_ms"],
                          "errors": r["errors"]})
        out["rates"] = rates
        bound = 5.0 * out["single_stream_p90_ms"]  # the Server scenario's p99 bound: 5x the unloaded p90
        out["server"] = scenarios.server(target, p99_bound_ms=bound, low_rps=0.05 * capacity, high_rps=capacity,
                                         steps=1 if m["smoke"] else 3, duration_s=m["lg_window"])
        stall = {}
        for mode in ("open", "closed"):
            # A fresh stall per mode: the node stalls once, 1 s after its first request; restart it for closed.
            if mode == "closed":
                stalled = topo.node(_plan("stall-check-2", models, model=str(models.fp32), threads=1,
                                          stall_at_s=1.0, stall_ms=200.0))
            spec = LoadSpec(target=target.model_copy(update={"url": stalled}), mode=mode, concurrency=1,
                            keep_samples=False, warmup_requests=0, drain_s=3.0,
                            arrival={"kind": "constant", "rate": 0.5 * capacity, "duration_s": 4.0})
            r = run_load(spec)
            stall[mode] = {"p99_ms": r["latency"]["p99_ms"], "max_ms": r["latency"]["max_ms"],
                           "p50_ms": r["latency"]["p50_ms"], "requests": r["requests"]}
        out["stall_200ms"] = stall
    return out


def _calibrations(names: list[str], smoke: bool) -> dict[str, Any]:
    """Userspace calibration of every profile; kernel mode (namespaces, tc, nftables) too where this is root."""
    from medopt.bench.links.calibrate import calibrate
    from medopt.bench.links.profiles import load_profiles

    profiles = load_profiles(None)
    seconds = 0.5 if smoke else None
    out: dict[str, Any] = {f"{n}/userspace": calibrate(profiles[n], mode="userspace", transfer_s=seconds)
                           for n in names}
    from medopt.bench.links.netns import require_kernel_mode
    from medopt.bench.links.profiles import LinkError

    for n in names:
        try:
            require_kernel_mode(profiles[n])
        except LinkError as exc:  # recorded, not hidden: the JSON says why kernel mode was not measured
            out[f"{n}/kernel"] = {"ok": None, "not_measured": str(exc)}
            continue
        out[f"{n}/kernel"] = calibrate(profiles[n], mode="kernel", transfer_s=seconds)
    return out


def _goals(result: dict[str, Any], lg: dict[str, Any], cal: dict[str, Any], constrained: str, fast: str | None
           ) -> list[dict[str, Any]]:
    goals = []
    for link, want in ((constrained, True), (fast, False)):
        data = result["links"].get(link) if link else None
        if not data or not data.get("split_vs_cloud_fp32"):
            continue
        vs = data["split_vs_cloud_fp32"]
        note = "" if want else " (fast link: split expected to lose)"
        goals.append(goal(f"{link}: split vs cloud-only mean response time reduction{note}",
                          vs["mean_ms"]["reduction"], ">= 0.27", vs["mean_ms"]["reduction"] >= 0.27,
                          ci={"ci_low": vs["mean_ms"]["ci"][0], "ci_high": vs["mean_ms"]["ci"][1],
                              "n": vs["mean_ms"]["n"]}))
        goals.append(goal(f"{link}: split vs cloud-only p99 response time reduction{note}",
                          vs["p99_ms"]["reduction"], ">= 0.30", vs["p99_ms"]["reduction"] >= 0.30,
                          ci={"ci_low": vs["p99_ms"]["ci"][0], "ci_high": vs["p99_ms"]["ci"][1],
                              "n": vs["p99_ms"]["n"]}))
        jv = data.get("split_vs_cloud_jpeg")
        if jv and jv.get("mean_ms"):
            goals.append(goal(f"{link}: split vs cloud-JPEG mean response time reduction",
                              jv["mean_ms"]["reduction"], "> 0", jv["mean_ms"]["reduction"] > 0))
        agreement = data["accuracy"].get("split", {}).get("agreement_with_fp32")
        if agreement is not None:
            goals.append(goal(f"{link}: split predictions agree with the whole fp32 model", agreement, ">= 0.99",
                              agreement >= 0.99))
    worst = max(abs(r["relative_error"]) for r in lg["rates"])
    goals.append(goal("load generator: achieved vs target rate up to 90% of capacity (worst relative error)",
                      worst, "<= 0.01", worst <= 0.01))
    st = lg["stall_200ms"]
    goals.append(goal("200 ms server stall: open-loop p99 (ms) shows it", st["open"]["p99_ms"], ">= 150",
                      st["open"]["p99_ms"] >= 150))
    goals.append(goal("200 ms server stall: closed-loop p99 (ms) hides it", st["closed"]["p99_ms"], "< 50",
                      st["closed"]["p99_ms"] < 50))
    for name, c in cal.items():
        if c.get("ok") is None:
            continue  # kernel mode not available here: recorded under calibration with the reason
        goals.append(goal(f"link {name}: calibration (RTT ±5%, goodput ±10%, loss ±0.5 pt)", bool(c["ok"]),
                          "true", bool(c["ok"])))
    return goals


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_mode_flags(parser)
    parser.add_argument("--links", nargs="+", default=None,
                        help="first: the constrained-uplink profile; last: the fast one (default rural-telemed lan; "
                             "smoke: rural-telemed only)")
    args = parser.parse_args()
    mode = mode_of(args)
    if args.links is None:
        args.links = ["rural-telemed"] if mode == "smoke" else ["rural-telemed", "lan"]
    m = MODES[mode]

    from medopt.bench.stage import prepare_models
    from medopt.config import load_config
    from medopt.pipeline.runner import run_pipeline
    from medopt.pipeline.steps import run_prefix
    from medopt.store import open_store

    with LoadMonitor(own_load=2) as monitor, tempfile.TemporaryDirectory(prefix="medopt-hybrid-") as tmp_name:
        tmp = Path(tmp_name)
        cfg = load_config(None, _overrides(m, args, tmp))
        outcome = run_pipeline(cfg)
        store = open_store(cfg.store)
        result = json.loads(store.get_bytes(f"{run_prefix(outcome.run_id)}/bench/results.json"))
        keys = _keys(store, outcome.run_id)
        models = prepare_models(store, model_key=keys["model"], compressed_key=None, workdir=tmp)
        (tmp / "payload.png").write_bytes(_first_png(store, keys["dataset"], tmp))
        lg = _loadgen_checks(models, m, tmp)
        names = args.links if mode == "smoke" else sorted(set(args.links) | set(ALL_PROFILES))
        cal = _calibrations(list(names), mode == "smoke")
    constrained, fast = args.links[0], (args.links[-1] if len(args.links) > 1 else None)
    goals = _goals(result, lg, cal, constrained, fast)
    rows = [{"link": link, "placement": p, "mean_ms": s["mean_ms"]["median"] if s["mean_ms"] else None,
             "p99_ms": s["p99_ms"]["median"] if s["p99_ms"] else None,
             "agreement": d["accuracy"].get(p, {}).get("agreement_with_fp32")}
            for link, d in result["links"].items() for p, s in d["placements"].items()]
    print_table(rows, ["link", "placement", "mean_ms", "p99_ms", "agreement"])
    path = write_results("hybrid", {"pipeline_run": outcome.run_id, "bench": result, "loadgen": lg,
                                    "calibration": cal, "goals": goals, "wall_seconds": outcome.seconds},
                         mode=mode, load=monitor)
    for g in goals:
        print(f"{'MET ' if g['met'] else 'MISS'} {g['name']}: {g['value']} (target {g['target']})")
    print(f"wrote {path}")
    return 0


def _first_png(store: Any, dataset_key: str, tmp: Path) -> bytes:
    from medopt.bench.stage import test_images

    return test_images(store, dataset_key, 1, tmp).pngs[0]


if __name__ == "__main__":
    sys.exit(main())
