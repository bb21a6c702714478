"""Ray Train beside the plain local loop on PneumoniaMNIST, on the same 2 cores, timed interleaved.

    python benchmarks/ray_train.py [--quick | --smoke] [--repeats N]

Trains the same model for the same epochs three ways: the local loop (train.num_threads=2), Ray Train with 1 worker
(2 CPUs) and with 2 DDP workers (1 CPU each). The three arms run round-robin inside one Ray session, the order
rotated each repeat (``medopt.bench.interleaved``), so a busy minute lands on every arm alike; each repeat is one
short training run. Per run: steady-state training samples/second (the mean over the epochs after the first, so
neither the first epoch nor Ray's start-up is in it), Ray's start-up (``trainer.fit()`` to the first epoch, reported
apart, with the head's ``ray.init`` once), wall time and test AUC. Reported: per arm the median over repeats with a
95% bootstrap CI and the spread, and each Ray arm's paired ratio to the local loop.
Goal: Ray's steady-state throughput >= 0.85x the local loop's, judged on the median ratio (CI shown).
Full: ResNet-18 (ImageNet stem) at 28 px, 5 epochs, 3 repeats; --quick: tiny_cnn on 1000 samples per split,
3 epochs, 3 repeats; --smoke: tiny_cnn on a few dozen synthetic images, 2 epochs, 1 repeat of the local loop and
the 2-worker DDP arm only (each Ray fit costs 10-30 s of start-up; the smoke run checks that the script runs).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from _common import REPO, SHARED_DATA, LoadMonitor, add_mode_flags, goal, mode_of, print_table, write_results

CORES = 2
GOAL_RATIO = 0.85
ARMS = {"local": "local loop, 2 threads", "ray_1x2": "ray train, 1 worker x 2 CPU",
        "ray_2x1": "ray train, 2 workers x 1 CPU"}


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_mode_flags(parser)
    parser.add_argument("--repeats", type=int, default=None, help="training runs per arm (default 3; smoke 1)")
    args = parser.parse_args()
    if args.repeats is not None and args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    return args


def _config(mode: str) -> Any:
    from medopt.config import load_config

    overrides = [f"data.path={SHARED_DATA / 'pneumoniamnist.npz'}", "model.stem=imagenet", "train.device=cpu",
                 "train.epochs=5", "train.scheduler.t0=5"]
    if mode == "quick":
        overrides += ["model.name=tiny_cnn", "data.max_samples=1000", "train.epochs=3", "train.scheduler.t0=3"]
    elif mode == "smoke":
        overrides += ["data.source=synthetic", "data.synthetic.num_samples=80", "model.name=tiny_cnn",
                      "train.epochs=2", "train.scheduler.t0=2", "train.batch_size=16", "data.augment.enabled=false"]
    return load_config(REPO / "configs" / "pneumonia.yaml", overrides)


def _test_auc(model: Any, cfg: Any, dataset: Any) -> float:
    import torch

    from medopt.data import make_loader
    from medopt.evaluate.metrics import compute_metrics
    from medopt.train.loop import evaluate_epoch

    loader = make_loader(dataset.test, cfg.data.preprocess, batch_size=256, shuffle=False, seed=0, task=dataset.task)
    out = evaluate_epoch(model, loader, None, device=torch.device("cpu"), task=dataset.task)
    return float(compute_metrics(out.y_true, out.y_prob, dataset.task, dataset.class_names)["auc"])


def _run_record(arm: str, fit: Any, wall: float, auc: float, startup: float | None) -> dict[str, Any]:
    """One training run: steady-state throughput excludes the first epoch (and so Ray's start-up)."""
    per_epoch = fit.history["samples_per_s"]
    steady = per_epoch[1:] or per_epoch
    return {"arm": arm, "samples_per_s": statistics.mean(steady), "first_epoch_samples_per_s": per_epoch[0],
            "startup_s": startup, "wall_s": wall, "test_auc": auc, "epochs": fit.epochs_run}


def _local(cfg: Any, dataset: Any) -> dict[str, Any]:
    import torch

    from medopt.train.stage import train_model

    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"backend": "local", "num_threads": CORES})})
    start = time.perf_counter()
    model, fit = train_model(cfg, dataset)
    wall = time.perf_counter() - start
    torch.set_num_threads(1)  # back to the driver's budget: it only waits while Ray trains
    return _run_record("local", fit, wall, _test_auc(model, cfg, dataset), None)


def _ray(cfg: Any, dataset: Any, workers: int, run_dir: Path) -> dict[str, Any]:
    from medopt.train.ray_trainer import run_ray_training

    train = cfg.train.model_copy(update={"backend": "ray", "num_workers": workers, "num_threads": None})
    cfg = cfg.model_copy(update={"train": train})
    start = time.perf_counter()
    out = run_ray_training(cfg, dataset, run_dir=run_dir)
    wall = time.perf_counter() - start
    return _run_record(f"ray_{workers}x{CORES // workers}", out.fit, wall, _test_auc(out.model, cfg, dataset),
                       out.startup_seconds)


def _arms(cfg: Any, dataset: Any, run_dir: Path, runs: list[dict[str, Any]], names: tuple[str, ...]
          ) -> dict[str, Callable[[], float]]:
    """Each arm trains once, keeps its run record and returns its steady-state samples/s."""
    def arm(train: Callable[[], dict[str, Any]]) -> Callable[[], float]:
        def call() -> float:
            runs.append(train())
            return float(runs[-1]["samples_per_s"])
        return call

    arms = {"local": arm(lambda: _local(cfg, dataset)), "ray_1x2": arm(lambda: _ray(cfg, dataset, 1, run_dir)),
            "ray_2x1": arm(lambda: _ray(cfg, dataset, 2, run_dir))}
    return {name: arms[name] for name in names}


def _rows(summary: dict[str, Any], runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for arm, stats in summary["arms"].items():
        mine = [r for r in runs if r["arm"] == arm]
        ratio = summary["ratios_vs_baseline"].get(arm)
        startups = [r["startup_s"] for r in mine if r["startup_s"] is not None]
        rows.append({"run": ARMS[arm], "samples_per_s": stats["median"], "ci_low": stats["ci_low"],
                     "ci_high": stats["ci_high"], "min": stats["min"], "max": stats["max"], "repeats": stats["n"],
                     "ratio_vs_local": ratio["median"] if ratio else 1.0,
                     "ratio_ci": [ratio["ci_low"], ratio["ci_high"]] if ratio else [1.0, 1.0],
                     "startup_s": statistics.median(startups) if startups else "",
                     "wall_s": statistics.median(r["wall_s"] for r in mine),
                     "test_auc": statistics.median(r["test_auc"] for r in mine)})
    return rows


def main() -> int:
    args = _args()
    mode = mode_of(args)
    repeats = args.repeats or (1 if mode == "smoke" else 3)
    names = ("local", "ray_2x1") if mode == "smoke" else tuple(ARMS)

    from medopt.bench import interleaved, summarize
    from medopt.data import load_dataset
    from medopt.train.ray_runtime import ray_session

    cfg = _config(mode)
    dataset = load_dataset(cfg.data)
    runs: list[dict[str, Any]] = []
    started = time.perf_counter()
    with LoadMonitor(own_load=CORES) as monitor, tempfile.TemporaryDirectory(prefix="medopt-bench-") as tmp:
        t0 = time.perf_counter()
        with ray_session(Path(tmp), num_cpus=CORES):
            ray_init = time.perf_counter() - t0
            samples = interleaved(_arms(cfg, dataset, Path(tmp), runs, names), repeats=repeats, warmup=0)
    summary = summarize(samples, baseline="local", higher_is_better=True)
    rows = _rows(summary, runs)
    print_table(rows, ["run", "samples_per_s", "ci_low", "ci_high", "ratio_vs_local", "startup_s", "wall_s",
                       "test_auc"])
    load = monitor.summary()
    print(f"Ray head start (ray.init): {ray_init:.1f} s; load before {load['load_before'][0]:.1f}, during (median) "
          f"{load['load_during_median']:.1f} on {load['cores']} cores; loaded: {load['loaded']}")
    goals = [goal(f"{ARMS[arm]}: steady-state throughput vs local loop", ratio["median"], f">= {GOAL_RATIO}",
                  ratio["median"] >= GOAL_RATIO, ci=ratio)
             for arm, ratio in summary["ratios_vs_baseline"].items()]
    for g in goals:
        print(f"goal {'met' if g['met'] else 'MISSED'}: {g['name']} = {g['value']:.3f} (median of {g['n']} paired "
              f"repeats, 95% CI {g['ci'][0]:.3f}..{g['ci'][1]:.3f}; target {g['target']})")
    path = write_results("ray_train", {
        "model": cfg.model.name, "epochs": cfg.train.epochs, "train_samples": len(dataset.train), "cores": CORES,
        "repeats": repeats, "rows": rows, "summary": summary, "runs": runs, "ray_init_seconds": ray_init,
        "wall_seconds": time.perf_counter() - started, "config": cfg.model_dump(mode="json"), "goals": goals,
    }, mode=mode, load=load)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
