"""Compression on real PneumoniaMNIST: two fp32 baselines (PyTorch eager, ONNX Runtime) beside every recipe.

    python benchmarks/compress.py [--quick] [--size 224] [--epochs 3] [--train-samples 1000] [--models ...]
        [--warmup 64:6] [--recipes ...]

For each model: train on PneumoniaMNIST (images upsampled to --size by preprocessing), then run the recipes with
medopt's compress engine (same thread count, same fixed inputs, median of >= 30 runs after warm-up) and print
latency at batch 1 and 32, speedups vs both baselines, file size ratio vs the fp32 ONNX file, peak RSS, balanced
accuracy and AUC on the test split. Goals (issue 4), per model: the best recipe is >= 2x faster at batch 1 than
ONNX Runtime fp32, >= 4x smaller than the fp32 ONNX file, and loses <= 1 point of test balanced accuracy.

Training uses a class-weighted loss (balanced accuracy is what the budget guards). No pretrained weights are
reachable here and 2 CPU cores cannot train ResNet-50 for long at 224 px, so --warmup trains first at small sizes on
the full training split (progressive resizing), then --epochs at --size on --train-samples at --final-lr. A model
whose fp32 test balanced accuracy stays below 0.6 is flagged by a goal: at chance, "accuracy kept" means nothing.
Pruning backs off by 0.1 down to a ratio of 0.05. Every pruned network gets its BatchNorm statistics re-estimated
and every int8 file its output bias corrected (the compress defaults).
The committed run: --warmup 64:6 --epochs 1 --prune-steps 1 (the default recipes) for all four models, then
MobileNetV2 again with --round-to 16 (its entry replaced; each entry records its arguments).

All candidates of a model are timed round-robin in one pass (machine noise lands on all of them), and each one's
peak memory at batch 32 is measured in a fresh process. Each model's entry is written to the results file as soon
as it finishes, replacing that model's earlier entry and keeping the others, so the 4-model table can be built
over several invocations (each entry records its own date and arguments).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from _common import SHARED_DATA, goal, print_table, write_results

MIN_TRAINED_BACC = 0.6
MODELS = ("resnet50", "efficientnet_b0", "mobilenetv2_100", "densenet121")
RECIPES = ("fp32-onnx", "int8-static", "prune20+int8", "prune30+int8")
COLUMNS = ["model", "name", "variant", "latency_b1_ms", "latency_b32_ms", "speedup_b1_vs_eager", "speedup_b1_vs_ort",
           "speedup_b32_vs_ort", "size_ratio_vs_onnx", "peak_memory_mb", "memory_ratio_vs_ort", "bacc", "auc", "ratio",
           "within_budget"]


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="one small model at 32 px, 1 epoch, 200 training images")
    p.add_argument("--size", type=int, default=None, help="input side (default 224; quick 32)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default 3; quick 1)")
    p.add_argument("--train-samples", type=int, default=None, help="training images (default 1000; quick 200)")
    p.add_argument("--models", nargs="+", default=None, help=f"default: {' '.join(MODELS)}")
    p.add_argument("--recipes", nargs="+", default=list(RECIPES))
    p.add_argument("--threads", type=int, default=None, help="threads for every candidate (default: all cores)")
    p.add_argument("--runs", type=int, default=30, help="timed runs per latency (after warm-up)")
    p.add_argument("--prune-steps", type=int, default=2, help="iterative prune + fine-tune steps per ratio tried")
    p.add_argument("--warmup", type=_warmup_stages, default=[], metavar="SIZE:EPOCHS,...",
                   help="progressive resizing: epochs at smaller sizes on the full training split before the "
                        "--epochs at --size on --train-samples (e.g. 64:5; default none)")
    p.add_argument("--round-to", type=int, default=8,
                   help="pruned channel counts are multiples of this (compress.round_to; default 8)")
    p.add_argument("--calibration", nargs="+", default=["minmax"], choices=["minmax", "percentile", "entropy"],
                   help="ORT int8 calibration methods, tried in order until one fits the budget")
    p.add_argument("--final-lr", type=float, default=None,
                   help="lr of the epochs at --size after a warm-up (default 1e-4: a fresh Adam at 1e-3 after the "
                        "size change knocked MobileNetV2's operating point to one class)")
    args = p.parse_args()
    if args.round_to < 1:
        p.error(f"--round-to must be >= 1, got {args.round_to}")
    return args


def _warmup_stages(text: str) -> list[tuple[int, int]]:
    """``"64:5,112:1"`` -> [(64, 5), (112, 1)]; argparse reports a malformed value as a usage error."""
    try:
        stages = [(int(size), int(epochs)) for size, epochs in (part.split(":") for part in text.split(",") if part)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SIZE:EPOCHS[,SIZE:EPOCHS...], got {text!r}") from None
    if any(size < 8 or epochs < 1 for size, epochs in stages):
        raise argparse.ArgumentTypeError(f"sizes must be >= 8 px and epochs >= 1, got {text!r}")
    return stages


def _config(args: argparse.Namespace, model: str, size: int | None = None, epochs: int | None = None,
            lr: float = 1e-3) -> Any:
    from medopt.config import load_config

    npz = SHARED_DATA / "pneumoniamnist.npz"
    return load_config(None, [
        "data.source=medmnist", f"data.path={npz}", "data.class_names=[normal, pneumonia]",
        f"data.preprocess.image_size={size or args.size}", "data.preprocess.to_rgb=true",
        f"model.name={model}", f"train.epochs={epochs or args.epochs}", "train.batch_size=32", "train.optimizer=adam",
        f"train.lr={lr}", "train.scheduler.kind=none", "train.device=cpu", "train.monitor=val_bacc",
        "train.class_weighting=true",
        f"compress.recipes=[{', '.join(args.recipes)}]", "compress.finetune_epochs=1",
        f"compress.prune_steps={args.prune_steps}",
        "compress.accuracy_budget=0.01", "compress.calibration_samples=128", "compress.min_ratio=0.05",
        f"compress.round_to={getattr(args, 'round_to', 8)}",
        f"compress.calibration_methods=[{', '.join(getattr(args, 'calibration', ['minmax']))}]",
        "compress.enabled=true",
        "compress.distill=true",
        f"compress.pt2e_compile={'false' if args.quick else 'true'}",
        *([f"compress.num_threads={args.threads}"] if args.threads else []),
    ])


def _dataset(cfg: Any, train_samples: int | None) -> Any:
    from medopt.data.load import load_dataset
    from medopt.data.splits import stratified_subsample

    ds = load_dataset(cfg.data)
    if train_samples is None:
        return ds
    idx = stratified_subsample(ds.train.labels, train_samples, seed=0)
    train = dataclasses.replace(ds.train, images=ds.train.images[idx], labels=ds.train.labels[idx],
                                groups=None if ds.train.groups is None else ds.train.groups[idx],
                                sites=None if ds.train.sites is None else ds.train.sites[idx])
    return dataclasses.replace(ds, train=train)


def _goals(model: str, rows: list[dict[str, Any]], best: str | None) -> list[dict[str, Any]]:
    if best is None:
        return [goal(f"{model}: a recipe within the accuracy budget", 0.0, ">= 1", False)]
    row = next(r for r in rows if r["name"] == best)
    loss = rows[0]["bacc"] - row["bacc"]
    trained = rows[0]["bacc"] >= MIN_TRAINED_BACC  # at chance, "accuracy kept" means nothing
    return [
        goal(f"{model}: the fp32 model is trained (test balanced accuracy)", rows[0]["bacc"],
             f">= {MIN_TRAINED_BACC}", trained),
        goal(f"{model} {best}: speed-up at batch 1 vs ORT fp32", row["speedup_b1_vs_ort"], ">= 2.0",
             row["speedup_b1_vs_ort"] >= 2.0),
        goal(f"{model} {best}: smaller than the fp32 ONNX file", row["size_ratio_vs_onnx"], ">= 4.0",
             row["size_ratio_vs_onnx"] >= 4.0),
        goal(f"{model} {best}: test balanced-accuracy loss vs fp32", loss, "<= 0.01", trained and loss <= 0.01),
    ]


def _run_model(args: argparse.Namespace, name: str, work: Path) -> dict[str, Any]:
    from medopt.compress.split_inputs import CompressData
    from medopt.compress.engine import MeasureSettings, compress_model
    from medopt.train.stage import train_model

    stages = args.warmup
    cfg = _config(args, name, lr=(args.final_lr or 1e-4) if stages else 1e-3)
    dataset = _dataset(cfg, args.train_samples)
    started = time.perf_counter()
    model = None
    for size, epochs in stages:  # progressive resizing: cheap epochs at small sizes first
        small = _config(args, name, size=size, epochs=epochs)
        model, warm = train_model(small, _dataset(small, None), model=model)
        print(f"{name}: warm-up at {size} px, {epochs} epochs: val bacc {warm.best_score:.3f}"
              f" (epoch {warm.best_epoch})", flush=True)
    model, fit = train_model(cfg, dataset, model=model)
    train_s = time.perf_counter() - started
    data = CompressData(dataset, cfg.data.preprocess, batch_size=cfg.train.batch_size, seed=0)
    settings = MeasureSettings(runs=args.runs, warmup=5, batch_sizes=(1, 32))
    outcome = compress_model(model, data, cfg.compress, cfg.train, workdir=work / name, settings=settings)
    rows = [{"model": name, **{k: v for k, v in r.items() if k not in ("metrics", "attempts")},
             "attempts": r.get("attempts")} for r in outcome.rows]
    return {"model": name, "rows": rows, "best": outcome.best, "threads": outcome.threads, "train_seconds": train_s,
            "compress_seconds": time.perf_counter() - started - train_s, "best_val_epoch": fit.best_epoch,
            "goals": _goals(name, [r for r in rows if "error" not in r], outcome.best)}


def _merged(path: Path, fresh: dict[str, Any]) -> list[dict[str, Any]]:
    """The models already in the results file, with ``fresh`` replacing its model's entry."""
    import json

    kept = json.loads(path.read_text()).get("models", []) if path.exists() else []
    return [m for m in kept if m["model"] != fresh["model"]] + [fresh]


def main() -> int:
    from _common import RESULTS

    args = _args()
    args.size = args.size or (32 if args.quick else 224)
    args.epochs = args.epochs or (1 if args.quick else 3)
    args.train_samples = args.train_samples or (200 if args.quick else 1000)
    models = args.models or (["mobilenetv2_100"] if args.quick else list(MODELS))
    target = RESULTS / ("compress.quick.json" if args.quick else "compress.json")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for name in models:
            t0 = time.perf_counter()
            result = {**_run_model(args, name, Path(tmp)), "args": vars(args),
                      "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
            result["wall_seconds"] = time.perf_counter() - t0
            print_table([r for r in result["rows"] if "error" not in r], COLUMNS)
            for r in result["rows"]:
                if "error" in r:
                    print(f"{name} {r['name']}: FAILED {r['error']}")
            print(f"{name}: best recipe within budget: {result['best']}")
            entries = _merged(target, result)
            goals = [g for m in entries for g in m["goals"]]
            path = write_results("compress", {"models": entries, "goals": goals}, args.quick)
            print(f"wrote {path} ({len(entries)} models)", flush=True)
    for g in goals:
        print(f"goal {'MET ' if g['met'] else 'MISS'} {g['name']}: {g['value']:.3f} (target {g['target']})")
    print(f"wall {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
