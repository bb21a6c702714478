"""Ray Train beside the plain local loop on PneumoniaMNIST, on the same 2 cores, in one run.

    python benchmarks/ray_train.py [--quick]

Trains the same model for the same epochs three ways: the local loop (train.num_threads=2), Ray Train with 1 worker
(2 CPUs) and with 2 DDP workers (1 CPU each). Reports steady-state training samples/second (epochs after the first;
Ray's fixed start-up cost, from ``trainer.fit()`` to the first epoch, is reported apart), the ratios vs local, and each
model's test AUC from the same evaluation function. Goal: Ray's steady-state throughput >= 0.85x the local loop.
Full mode: ResNet-18 (ImageNet stem) at 28 px, 5 epochs; --quick: tiny_cnn on 1000 samples per split, 3 epochs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import REPO, SHARED_DATA, goal, print_table, write_results

CORES = 2
GOAL_RATIO = 0.85


def _config(quick: bool) -> Any:
    from medopt.config import load_config

    overrides = [f"data.path={SHARED_DATA / 'pneumoniamnist.npz'}", "model.stem=imagenet", "train.device=cpu",
                 "train.epochs=5", "train.scheduler.t0=5"]
    if quick:
        overrides += ["model.name=tiny_cnn", "data.max_samples=1000", "train.epochs=3", "train.scheduler.t0=3"]
    return load_config(REPO / "configs" / "pneumonia.yaml", overrides)


def _test_auc(model: Any, cfg: Any, dataset: Any) -> float:
    import torch

    from medopt.data import make_loader
    from medopt.evaluate.metrics import compute_metrics
    from medopt.train.loop import evaluate_epoch

    loader = make_loader(dataset.test, cfg.data.preprocess, batch_size=256, shuffle=False, seed=0, task=dataset.task)
    out = evaluate_epoch(model, loader, None, device=torch.device("cpu"), task=dataset.task)
    return float(compute_metrics(out.y_true, out.y_prob, dataset.task, dataset.class_names)["auc"])


def _row(name: str, fit: Any, wall: float, auc: float, startup: float | None) -> dict[str, Any]:
    steady = fit.history["samples_per_s"][1:] or fit.history["samples_per_s"]
    return {"run": name, "samples_per_s": statistics.mean(steady), "first_epoch_samples_per_s":
            fit.history["samples_per_s"][0], "startup_s": startup if startup is not None else "",
            "wall_s": wall, "test_auc": auc, "epochs": fit.epochs_run}


def _local(cfg: Any, dataset: Any) -> dict[str, Any]:
    from medopt.train.stage import train_model

    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"backend": "local", "num_threads": CORES})})
    start = time.perf_counter()
    model, fit = train_model(cfg, dataset)
    return _row("local loop, 2 threads", fit, time.perf_counter() - start, _test_auc(model, cfg, dataset), None)


def _ray(cfg: Any, dataset: Any, workers: int, run_dir: Path) -> dict[str, Any]:
    from medopt.train.ray_trainer import run_ray_training

    train = cfg.train.model_copy(update={"backend": "ray", "num_workers": workers, "num_threads": None})
    cfg = cfg.model_copy(update={"train": train})
    start = time.perf_counter()
    out = run_ray_training(cfg, dataset, run_dir=run_dir)
    name = f"ray train, {workers} worker(s) x {CORES // workers} CPU"
    return _row(name, out.fit, time.perf_counter() - start, _test_auc(out.model, cfg, dataset), out.startup_seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny_cnn, 1000 samples per split, 3 epochs")
    args = parser.parse_args()

    import torch

    from medopt.data import load_dataset
    from medopt.train.ray_runtime import ray_session

    cfg = _config(args.quick)
    dataset = load_dataset(cfg.data)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="medopt-bench-") as tmp:
        rows = [_local(cfg, dataset)]
        torch.set_num_threads(1)  # the driver only waits while Ray trains
        started = time.perf_counter()
        with ray_session(Path(tmp), num_cpus=CORES):
            ray_init = time.perf_counter() - started
            rows += [_ray(cfg, dataset, 1, Path(tmp)), _ray(cfg, dataset, 2, Path(tmp))]
    base = rows[0]["samples_per_s"]
    for r in rows:
        r["ratio_vs_local"] = r["samples_per_s"] / base
    print_table(rows, ["run", "samples_per_s", "ratio_vs_local", "startup_s", "wall_s", "test_auc"])
    print(f"Ray head start (ray.init): {ray_init:.1f} s; load average before {load_before[0]:.1f}, "
          f"after {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    goals = [goal(f"{r['run']}: steady-state throughput vs local loop", r["ratio_vs_local"], f">= {GOAL_RATIO}",
                  r["ratio_vs_local"] >= GOAL_RATIO) for r in rows[1:]]
    path = write_results("ray_train", {
        "model": cfg.model.name, "epochs": cfg.train.epochs, "train_samples": len(dataset.train), "cores": CORES,
        "rows": rows, "ray_init_seconds": ray_init, "load_average_before": load_before,
        "load_average_after": os.getloadavg(), "config": cfg.model_dump(mode="json"), "goals": goals,
    }, args.quick)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
