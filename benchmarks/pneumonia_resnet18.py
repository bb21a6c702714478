"""ResNet-18 at 28x28 on real PneumoniaMNIST, trained by medopt on this CPU, beside the MedMNIST v2 published result.

    python benchmarks/pneumonia_resnet18.py [--quick | --smoke]

Runs the real pipeline (data -> train -> evaluate) from configs/pneumonia.yaml and compares test AUC / ACC with the
paper's ResNet-18 (28): AUC 0.944, ACC 0.854. Also reports balanced accuracy and F1, wall time and the config.
One training run, not a timing: accuracy has no arms to interleave; the results JSON still carries the machine
fingerprint and the load (a loaded machine makes the wall time, not the metrics, suspect).
--quick: 3 epochs; --smoke: tiny_resnet on 48 real images per split, 1 epoch (checks the script runs).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, SHARED_DATA, LoadMonitor, add_mode_flags, goal, mode_of, print_table, write_results

PUBLISHED = {"auc": 0.944, "acc": 0.854}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    add_mode_flags(parser)
    parser.add_argument("--runner", default="inprocess", choices=["inprocess", "kfp-local"])
    args = parser.parse_args()
    mode = mode_of(args)

    from medopt.config import dump_yaml, load_config
    from medopt.pipeline.runner import run_pipeline

    npz = SHARED_DATA / "pneumoniamnist.npz"
    overrides = [f"data.path={npz}", f"runner={args.runner}"]
    if mode == "quick":
        overrides += ["train.epochs=3", "evaluate.bootstrap_samples=200", "train.scheduler.t0=3"]
    elif mode == "smoke":
        overrides += ["model.name=tiny_resnet", "data.max_samples=48", "train.epochs=1", "train.scheduler.t0=1",
                      "train.batch_size=16", "evaluate.bootstrap_samples=20",
                      "evaluate.latency_runs=2", "evaluate.latency_warmup=1", "evaluate.latency_batch_sizes=[1]",
                      "evaluate.report=false"]
    cfg = load_config(REPO / "configs" / "pneumonia.yaml", overrides)
    with LoadMonitor(own_load=2) as monitor, tempfile.TemporaryDirectory() as tmp:
        cfg = cfg.model_copy(update={"output_dir": str(Path(tmp) / "runs"),
                                     "store": cfg.store.model_copy(update={"root": str(Path(tmp) / "store")})})
        started = time.perf_counter()
        outcome = run_pipeline(cfg)
        wall = time.perf_counter() - started
    m, ci = outcome.metrics["metrics"], outcome.metrics["ci"]
    rows = [
        {"model": "MedMNIST v2 ResNet-18 (28), published", "auc": PUBLISHED["auc"], "acc": PUBLISHED["acc"],
         "bacc": "", "f1_weighted": ""},
        {"model": "medopt ResNet-18 (28)", "auc": m["auc"], "acc": m["acc"], "bacc": m["bacc"],
         "f1_weighted": m["f1_weighted"]},
    ]
    print_table(rows, ["model", "auc", "acc", "bacc", "f1_weighted"])
    print(f"ratio auc {m['auc'] / PUBLISHED['auc']:.3f}x, acc {m['acc'] / PUBLISHED['acc']:.3f}x; wall {wall:.0f} s")
    goals = [
        goal("test AUC >= published ResNet-18 (28)", m["auc"], ">= 0.944", m["auc"] >= PUBLISHED["auc"]),
        goal("test ACC >= published ResNet-18 (28)", m["acc"], ">= 0.854", m["acc"] >= PUBLISHED["acc"]),
    ]
    path = write_results("pneumonia_resnet18", {
        "published": PUBLISHED, "metrics": m, "ci": ci, "profile": outcome.metrics.get("profile"),
        "wall_seconds": wall, "config": dump_yaml(cfg), "goals": goals,
    }, mode=mode, load=monitor)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
