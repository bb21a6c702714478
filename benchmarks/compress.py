"""Compression on real PneumoniaMNIST: two fp32 baselines (PyTorch eager, ONNX Runtime) beside every recipe.

    python benchmarks/compress.py [--quick | --smoke] [--size 64] [--epochs 15] [--patience 3] [--train-samples N]
        [--models ...] [--recipes ...] [--runs 30] [--repeats 6] [--confirm-repeats 10] [--warmup 64:6]

For each model: train on PneumoniaMNIST (images resized to --size by preprocessing) to convergence: early stopping on
validation balanced accuracy (--patience epochs without a gain, at most --epochs; the best epoch's weights are kept,
and the JSON records the epochs run, the best epoch and the validation curve). Then run the recipes with medopt's
compress engine (accuracy budget on VALIDATION, pruning backed off by 0.1 down to 0.05, BatchNorm re-estimated after
pruning, int8 output bias correction after a miss: the compress defaults).

Timing is this script's, with the measurement harness (medopt.bench), not the engine's: candidates that are the same
file (same sha256, e.g. fp32-onnx and the ORT baseline, or two pruning recipes that backed off to the same ratio)
are timed once. All distinct candidates are timed interleaved, order rotated, --repeats times per batch size (each
sample the median of --runs / --repeats calls), and reported as medians with 95% bootstrap CIs; speed-ups are paired
ratios of medians with CIs. The fastest candidate at batch 1 within the validation budget is then timed again in a
fresh interleaved pass against the ORT baseline alone (--confirm-repeats), and the speed goal uses that confirmation.

Goals (issue 4), per model: the chosen recipe is >= 2x faster at batch 1 than ONNX Runtime fp32, >= 4x smaller than
the fp32 ONNX file, and keeps the accuracy: an equivalence test (TOST) that its test balanced accuracy is within 1
point of the fp32 model's (90% paired bootstrap interval of the difference inside +-0.01, over test images),
reported with the fp32/compressed prediction agreement and a McNemar p-value. Goal names carry the pruning ratio
actually used after the back-off, e.g. "resnet50 prune20(→0.10)+int8". Two more goals guard the premise: the fp32
model is trained (test balanced accuracy >= 0.6) and it converged (early stopping ended it before the cap).

Peak memory at batch 32 is measured by the engine, each candidate in a fresh process. Each model's entry is written
as soon as it finishes, replacing that model's earlier entry and keeping the others measured the same way (the
"protocol" field), so a table can be built over several invocations (each entry records its date, arguments, load
and machine).

The default (full) run, resnet50 and mobilenetv2_100 at 64 px on the whole training split, fits in about 40 minutes
on 2 cores. The images are 28 px, so 64 px loses no information, but latencies and int8 speed-ups at 64 px are
not those of a 224 px deployment (fixed per-call costs weigh more); --size 224 and --models efficientnet_b0
densenet121 measure those at hours of training.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import re
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from _common import (RESULTS, SHARED_DATA, LoadMonitor, add_mode_flags, goal, mode_of, print_table,
                     write_results)

PROTOCOL = "harness-v1"
MIN_TRAINED_BACC = 0.6
MODELS = ("resnet50", "mobilenetv2_100")
RECIPES = ("fp32-onnx", "int8-static", "prune20+int8", "prune30+int8")
BATCH_SIZES = (1, 32)
BASELINE_EAGER, BASELINE_ORT = "fp32-eager", "fp32-ort"
MODE_DEFAULTS: dict[str, dict[str, Any]] = {
    "full": {"size": 64, "epochs": 15, "patience": 3, "train_samples": None, "eval_samples": None,
             "models": list(MODELS), "runs": 30, "repeats": 6, "confirm_repeats": 10, "prune_steps": 2, "memory": True},
    "quick": {"size": 32, "epochs": 3, "patience": 1, "train_samples": 200, "eval_samples": None,
              "models": ["mobilenetv2_100"], "runs": 30, "repeats": 6, "confirm_repeats": 10, "prune_steps": 2,
              "memory": True},
    "smoke": {"size": 28, "epochs": 2, "patience": 1, "train_samples": 48, "eval_samples": 64,
              "models": ["tiny_cnn"], "runs": 5, "repeats": 5, "confirm_repeats": 5, "prune_steps": 1, "memory": False},
}
KEEP = ("name", "kind", "file", "file_bytes", "params", "macs", "ratio", "val_bacc", "val_bacc_loss", "within_budget",
        "baseline", "attempts", "notes", "peak_memory_mb", "peak_rss_mb", "peak_memory_batch", "peak_memory_of",
        "size_ratio_vs_onnx", "memory_ratio_vs_ort", "error")
"""Engine row fields kept: everything but its latencies, which this script measures with the harness instead."""
COLUMNS = ["model", "name", "latency_b1_ms", "latency_b32_ms", "speedup_b1_vs_ort", "speedup_b32_vs_ort",
           "size_ratio_vs_onnx", "peak_memory_mb", "test_bacc", "bacc_loss", "agreement", "mcnemar_p", "ratio",
           "within_budget", "same_file_as"]


# ------------------------------------------------------------------------------------------------- arguments
def _at_least(low: int) -> Callable[[str], int]:
    """argparse type: an int >= ``low`` (a bad value is a usage error, not a traceback)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    return parse


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_mode_flags(p)
    p.add_argument("--size", type=int, default=None, help="input side (default 64; quick 32; smoke 28)")
    p.add_argument("--epochs", type=_at_least(1), default=None,
                   help="most training epochs at --size; early stopping usually ends sooner (default 15; quick 3)")
    p.add_argument("--patience", type=_at_least(1), default=None,
                   help="epochs without a validation balanced-accuracy gain before stopping (default 3; quick 1)")
    p.add_argument("--train-samples", type=int, default=None, help="training images (default all; quick 200)")
    p.add_argument("--models", nargs="+", default=None, help=f"default: {' '.join(MODELS)}")
    p.add_argument("--recipes", nargs="+", default=list(RECIPES))
    p.add_argument("--threads", type=int, default=None, help="threads for every candidate (default: all cores)")
    p.add_argument("--runs", type=_at_least(1), default=None,
                   help="timed calls per candidate and batch size, spread over --repeats interleaved samples "
                        "(default 30; smoke 5)")
    p.add_argument("--repeats", type=_at_least(5), default=None,
                   help="interleaved repeats per batch size (>= 5; default 6; smoke 5)")
    p.add_argument("--confirm-repeats", type=_at_least(5), default=None,
                   help="repeats of the confirmation pass, chosen recipe vs ORT fp32 (>= 5; default 10; smoke 5)")
    p.add_argument("--margin", type=float, default=0.01, help="TOST equivalence margin in balanced accuracy")
    p.add_argument("--prune-steps", type=_at_least(1), default=None,
                   help="iterative prune + fine-tune steps per ratio tried (default 2; smoke 1)")
    p.add_argument("--warmup", type=_warmup_stages, default=[], metavar="SIZE:EPOCHS,...",
                   help="progressive resizing: fixed epochs at smaller sizes on the full training split before the "
                        "early-stopped epochs at --size (e.g. 64:5; default none)")
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
    if not 0 < args.margin < 1:
        p.error(f"--margin must lie in (0, 1), got {args.margin}")
    _apply_mode_defaults(args)
    return args


def _apply_mode_defaults(args: argparse.Namespace) -> None:
    """Fill the flags left unset with the mode's defaults (full / quick / smoke)."""
    args.mode = mode_of(args)
    for key, value in MODE_DEFAULTS[args.mode].items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)


def _warmup_stages(text: str) -> list[tuple[int, int]]:
    """``"64:5,112:1"`` -> [(64, 5), (112, 1)]; argparse reports a malformed value as a usage error."""
    try:
        stages = [(int(size), int(epochs)) for size, epochs in (part.split(":") for part in text.split(",") if part)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SIZE:EPOCHS[,SIZE:EPOCHS...], got {text!r}") from None
    if any(size < 8 or epochs < 1 for size, epochs in stages):
        raise argparse.ArgumentTypeError(f"sizes must be >= 8 px and epochs >= 1, got {text!r}")
    return stages


# ------------------------------------------------------------------------------------------------- training
def _config(args: argparse.Namespace, model: str, size: int | None = None, epochs: int | None = None,
            lr: float = 1e-3, patience: int | None = None) -> Any:
    from medopt.config import load_config

    npz = SHARED_DATA / "pneumoniamnist.npz"
    return load_config(None, [
        "data.source=medmnist", f"data.path={npz}", "data.class_names=[normal, pneumonia]",
        f"data.preprocess.image_size={size or args.size}", "data.preprocess.to_rgb=true",
        f"model.name={model}", f"train.epochs={epochs or args.epochs}", "train.batch_size=32", "train.optimizer=adam",
        f"train.lr={lr}", "train.scheduler.kind=none", "train.device=cpu", "train.monitor=val_bacc",
        "train.class_weighting=true",
        *([f"train.early_stopping_patience={patience}"] if patience else []),
        f"compress.recipes=[{', '.join(args.recipes)}]", "compress.finetune_epochs=1",
        f"compress.prune_steps={args.prune_steps}",
        "compress.accuracy_budget=0.01", "compress.calibration_samples=128", "compress.min_ratio=0.05",
        f"compress.round_to={args.round_to}",
        f"compress.calibration_methods=[{', '.join(args.calibration)}]",
        "compress.enabled=true",
        "compress.distill=true",
        f"compress.pt2e_compile={'true' if args.mode == 'full' else 'false'}",
        *([f"compress.num_threads={args.threads}"] if args.threads else []),
    ])


def _subsample(split: Any, samples: int | None) -> Any:
    """A stratified subsample of one split (all of it for None)."""
    from medopt.data.splits import stratified_subsample

    if samples is None or samples >= len(split.labels):
        return split
    idx = stratified_subsample(split.labels, samples, seed=0)
    return dataclasses.replace(split, images=split.images[idx], labels=split.labels[idx],
                               groups=None if split.groups is None else split.groups[idx],
                               sites=None if split.sites is None else split.sites[idx])


def _dataset(cfg: Any, train_samples: int | None, eval_samples: int | None = None) -> Any:
    """The dataset with its training split (and, for --smoke, validation and test splits) subsampled."""
    from medopt.data.load import load_dataset

    ds = load_dataset(cfg.data)
    return dataclasses.replace(ds, train=_subsample(ds.train, train_samples), val=_subsample(ds.val, eval_samples),
                               test=_subsample(ds.test, eval_samples))


def _fit_record(fit: Any) -> dict[str, Any]:
    """What the JSON says about one training stage: epochs run, best epoch, whether patience ended it, val curve."""
    return {"epochs_run": fit.epochs_run, "best_epoch": fit.best_epoch, "best_val_bacc": fit.best_score,
            "stopped_early": fit.stopped_early, "val_bacc_curve": list(fit.history["val_bacc"])}


def _train(args: argparse.Namespace, name: str) -> tuple[Any, Any, Any, dict[str, Any]]:
    """Warm-up stages (fixed epochs), then early-stopped epochs at --size: (model, cfg, dataset, training record)."""
    from medopt.train.stage import train_model

    started = time.perf_counter()
    model, warmups = None, []
    for size, epochs in args.warmup:  # progressive resizing: cheap epochs at small sizes first
        small = _config(args, name, size=size, epochs=epochs)
        model, warm = train_model(small, _dataset(small, None, args.eval_samples), model=model)
        warmups.append({"size": size, "epochs": epochs, **_fit_record(warm)})
        print(f"{name}: warm-up at {size} px, {epochs} epochs: val bacc {warm.best_score:.3f}", flush=True)
    cfg = _config(args, name, lr=(args.final_lr or 1e-4) if args.warmup else 1e-3, patience=args.patience)
    dataset = _dataset(cfg, args.train_samples, args.eval_samples)
    model, fit = train_model(cfg, dataset, model=model)
    record = {"max_epochs": args.epochs, "patience": args.patience, "monitor": "val_bacc", **_fit_record(fit),
              "warmup": warmups, "seconds": time.perf_counter() - started}
    print(f"{name}: {fit.epochs_run} epochs at {args.size} px (cap {args.epochs}), best val bacc "
          f"{fit.best_score:.3f} at epoch {fit.best_epoch}, stopped early: {fit.stopped_early}", flush=True)
    return model, cfg, dataset, record


# ------------------------------------------------------------------------------------------ distinct candidates
@dataclasses.dataclass
class Unit:
    """One distinct thing to time and score: a file (by sha256) run by one predictor variant."""

    key: str
    sha256: str | None
    variant: str
    predictor: Callable[[Any], Any]
    names: list[str] = dataclasses.field(default_factory=list)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _units(model: Any, outcome: Any, fp32_onnx: Path, threads: int) -> dict[str, Unit]:
    """Baselines and recipe outputs, deduplicated by (file hash, variant): the same file is timed once."""
    from medopt.compress.measure import onnx_predictor, torch_predictor

    units: dict[str, Unit] = {}

    def add(name: str, sha: str | None, variant: str, predictor: Callable[[Any], Any]) -> None:
        key = f"{sha[:16]}:{variant}" if sha else name
        units.setdefault(key, Unit(key, sha, variant, predictor)).names.append(name)

    add(BASELINE_EAGER, None, "eager", torch_predictor(model))
    add(BASELINE_ORT, _sha256(fp32_onnx), "ort", onnx_predictor(fp32_onnx, threads))
    for name, cm in outcome.models.items():
        sha = _sha256(cm.path)
        for variant, predictor in cm.predictors.items():
            add(name, sha, variant, predictor)
    return units


def _unit_of(units: dict[str, Unit], name: str) -> Unit:
    return next(u for u in units.values() if name in u.names)


# ---------------------------------------------------------------------------------------------------- timing
def _latency_arm(predictor: Callable[[Any], Any], x: Any, calls: int, settle_s: float = 0.05) -> Callable[[], float]:
    """An arm returning the median ms of ``calls`` calls, after a pause that lets ORT/OpenMP spinning threads sleep."""
    import numpy as np

    from medopt.evaluate.profile import time_calls

    def arm() -> float:
        time.sleep(settle_s)
        return float(np.median(time_calls(predictor, x, calls)))

    return arm


def _inputs(input_shape: tuple[int, int, int], batch: int) -> Any:
    import numpy as np

    return np.random.default_rng(0).standard_normal((batch, *input_shape), dtype=np.float32)


def _time_units(units: dict[str, Unit], input_shape: tuple[int, int, int], args: argparse.Namespace,
                repeats: int, batch_sizes: tuple[int, ...] = BATCH_SIZES) -> dict[str, dict[str, list[float]]]:
    """{str(batch): {unit key: samples in ms}}, every unit timed interleaved and rotated at each batch size."""
    from medopt.bench import interleaved

    calls = max(1, args.runs // args.repeats)
    out = {}
    for b in batch_sizes:
        x = _inputs(input_shape, b)
        arms = {key: _latency_arm(u.predictor, x, calls) for key, u in units.items()}
        out[str(b)] = interleaved(arms, repeats=repeats, warmup=1, rotate=True)
    return out


def _latency_fields(samples: dict[str, dict[str, list[float]]], key: str, ort: str, eager: str) -> dict[str, Any]:
    """A unit's medians with CIs and its paired speed-ups vs both baselines, per batch size."""
    from medopt.bench import median_ci, ratio_ci

    out: dict[str, Any] = {}
    for b, by_unit in samples.items():
        out[f"latency_b{b}"] = median_ci(by_unit[key])
        out[f"latency_b{b}_ms"] = out[f"latency_b{b}"]["median"]
        out[f"speedup_b{b}_vs_ort_ci"] = ratio_ci(by_unit[ort], by_unit[key], paired=True)
        out[f"speedup_b{b}_vs_ort"] = out[f"speedup_b{b}_vs_ort_ci"]["median"]
        out[f"speedup_b{b}_vs_eager"] = ratio_ci(by_unit[eager], by_unit[key], paired=True)["median"]
    return out


def _confirm(ort: Unit, chosen: Unit, input_shape: tuple[int, int, int], args: argparse.Namespace) -> dict[str, Any]:
    """A fresh interleaved pass at batch 1, ORT fp32 vs the chosen recipe alone: the numbers the speed goal uses."""
    from medopt.bench import median_ci, ratio_ci

    samples = _time_units({ort.key: ort, chosen.key: chosen}, input_shape, args, args.confirm_repeats,
                          batch_sizes=(1,))["1"]
    return {"batch": 1, "repeats": args.confirm_repeats, "calls_per_sample": max(1, args.runs // args.repeats),
            "samples_ms": {BASELINE_ORT: samples[ort.key], "chosen": samples[chosen.key]},
            "ort_ms": median_ci(samples[ort.key]), "chosen_ms": median_ci(samples[chosen.key]),
            "speedup": ratio_ci(samples[ort.key], samples[chosen.key], paired=True)}


# -------------------------------------------------------------------------------------------------- accuracy
def _equivalence(units: dict[str, Unit], data: Any, margin: float) -> dict[str, dict[str, Any]]:
    """Per unit on TEST vs the fp32 eager model: bacc, AUC, TOST on the bacc difference, agreement, McNemar."""
    import numpy as np

    from medopt.compress.measure import predict_split
    from medopt.evaluate.metrics import compute_metrics, predict
    from medopt.evaluate.stats import mcnemar_test, tost_bacc

    y_true, reference = predict_split(_unit_of(units, BASELINE_EAGER).predictor, data, "test")
    ref_pred = predict(reference, data.task)
    out = {}
    for key, unit in units.items():
        _, prob = predict_split(unit.predictor, data, "test")
        pred = predict(prob, data.task)
        metrics = compute_metrics(y_true, prob, data.task, data.dataset.class_names)
        tost = tost_bacc(y_true, reference, prob, data.task, margin=margin)
        out[key] = {"test_bacc": float(metrics["bacc"]), "test_auc": float(metrics["auc"]), "bacc_loss": -tost["diff"],
                    "tost": tost, "agreement": float(np.mean(pred == ref_pred)),
                    "mcnemar_p": mcnemar_test(y_true, ref_pred, pred)["p_value"]}
    return out


# ------------------------------------------------------------------------------------------------ rows, goals
def _label(row: dict[str, Any]) -> str:
    """The recipe name with the pruning ratio actually used: prune20+int8 that backed off to 0.1 -> prune20(→0.10)."""
    if row.get("ratio") is None:
        return row["name"]
    return re.sub(r"prune(\d+)", lambda m: f"prune{m.group(1)}(→{row['ratio']:.2f})", row["name"], count=1)


def _row(model: str, engine_row: dict[str, Any], unit: Unit, latency: dict[str, Any],
         accuracy: dict[str, Any]) -> dict[str, Any]:
    kept = {k: engine_row[k] for k in KEEP if k in engine_row}
    kept["notes"] = [n for n in kept.get("notes", []) if not n.startswith("slower than")]  # engine's 1-run timing
    return {"model": model, **kept, "label": _label(engine_row), "unit": unit.key, "sha256": unit.sha256,
            "variant": unit.variant, "same_file_as": [n for n in unit.names if n != engine_row["name"]],
            **latency, **accuracy}


def _fastest_unit(units: dict[str, Unit], name: str, samples: dict[str, dict[str, list[float]]]) -> Unit:
    """A recipe with several predictor variants (PT2E eager/compiled) is represented by its fastest at batch 1."""
    import statistics

    mine = [u for u in units.values() if name in u.names]
    return min(mine, key=lambda u: statistics.median(samples[str(min(BATCH_SIZES))][u.key]))


def _choose(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Fastest at batch 1 among recipes within the validation budget that are not the ORT baseline's own file."""
    ort = next(r for r in rows if r["name"] == BASELINE_ORT)
    ok = [r for r in rows if not r.get("baseline") and r.get("within_budget") and "error" not in r
          and r["unit"] != ort["unit"]]
    return min(ok, key=lambda r: r["latency_b1_ms"]) if ok else None


def _goals(model: str, rows: list[dict[str, Any]], best: dict[str, Any] | None, confirmation: dict[str, Any] | None,
           training: dict[str, Any], margin: float) -> list[dict[str, Any]]:
    fp32 = next(r for r in rows if r["name"] == BASELINE_EAGER)
    trained = fp32["test_bacc"] >= MIN_TRAINED_BACC  # at chance, "accuracy kept" means nothing
    out = [goal(f"{model}: the fp32 model is trained (test balanced accuracy)", fp32["test_bacc"],
                f">= {MIN_TRAINED_BACC}", trained),
           {**goal(f"{model}: the fp32 model converged (early stopping before the {training['max_epochs']}-epoch cap;"
                   f" best epoch {training['best_epoch']})", training["epochs_run"],
                   f"< {training['max_epochs']} epochs (patience {training['patience']})",
                   training["stopped_early"]), "val_bacc_curve": training["val_bacc_curve"]}]
    if best is None or confirmation is None:
        return [*out, goal(f"{model}: a recipe within the accuracy budget", 0.0, ">= 1", False)]
    s, t = confirmation["speedup"], best["tost"]
    tag = f"{model} {best['label']}"
    return [*out,
            {**goal(f"{tag}: speed-up at batch 1 vs ORT fp32 (confirmation pass, {s['n']} repeats, 95% CI "
                    f"{s['ci_low']:.2f}-{s['ci_high']:.2f})", s["median"], ">= 2.0", s["median"] >= 2.0),
             "ci_low": s["ci_low"], "ci_high": s["ci_high"]},
            goal(f"{tag}: smaller than the fp32 ONNX file", best["size_ratio_vs_onnx"], ">= 4.0",
                 best["size_ratio_vs_onnx"] >= 4.0),
            {**goal(f"{tag}: test balanced accuracy kept (TOST within {margin:g}: {t['level']:.0%} CI of the loss "
                    f"{-t['ci_high']:+.4f} to {-t['ci_low']:+.4f}; agreement {best['agreement']:.3f}, McNemar p "
                    f"{best['mcnemar_p']:.3f})", best["bacc_loss"], f"TOST equivalent within ±{margin:g}",
                    trained and t["equivalent"]),
             "tost": t, "agreement": best["agreement"], "mcnemar_p": best["mcnemar_p"]}]


# ------------------------------------------------------------------------------------------------- one model
def _compress(args: argparse.Namespace, name: str, work: Path) -> dict[str, Any]:
    from medopt.compress.engine import MeasureSettings, compress_model
    from medopt.compress.split_inputs import CompressData

    model, cfg, dataset, training = _train(args, name)
    started = time.perf_counter()
    data = CompressData(dataset, cfg.data.preprocess, batch_size=cfg.train.batch_size, seed=0)
    # the engine's own latency pass is cut to one call: the harness below does the timing
    settings = MeasureSettings(runs=1, warmup=1, batch_sizes=BATCH_SIZES, rounds=1, memory=args.memory)
    outcome = compress_model(model, data, cfg.compress, cfg.train, workdir=work / name, settings=settings)
    units = _units(model, outcome, work / name / "fp32" / "model.onnx", outcome.threads)  # RecipeContext.fp32_onnx
    samples = _time_units(units, data.input_shape, args, args.repeats)
    accuracy = _equivalence(units, data, args.margin)
    ort, eager = _unit_of(units, BASELINE_ORT).key, _unit_of(units, BASELINE_EAGER).key
    rows = []
    for r in outcome.rows:
        if "error" in r:
            rows.append({"model": name, **{k: r[k] for k in KEEP if k in r}})
            continue
        unit = _fastest_unit(units, r["name"], samples)
        rows.append(_row(name, r, unit, _latency_fields(samples, unit.key, ort, eager), accuracy[unit.key]))
    best = _choose(rows)
    confirmation = None if best is None else _confirm(units[ort], units[best["unit"]], data.input_shape, args)
    return {"model": name, "protocol": PROTOCOL, "training": training, "rows": rows,
            "best": None if best is None else best["name"], "best_label": None if best is None else best["label"],
            "confirmation": confirmation, "threads": outcome.threads, "distinct_candidates": len(units),
            "timing": {"repeats": args.repeats, "calls_per_sample": max(1, args.runs // args.repeats),
                       "samples_ms": samples, "units": {k: u.names for k, u in units.items()}},
            "compress_seconds": time.perf_counter() - started,
            "goals": _goals(name, rows, best, confirmation, training, args.margin)}


def _merged(path: Path, fresh: dict[str, Any]) -> list[dict[str, Any]]:
    """The models already in the results file measured the same way, with ``fresh`` replacing its model's entry."""
    import json

    kept = json.loads(path.read_text()).get("models", []) if path.exists() else []
    return [m for m in kept if m.get("protocol") == PROTOCOL and m["model"] != fresh["model"]] + [fresh]


def _report(result: dict[str, Any]) -> None:
    print_table([r for r in result["rows"] if "error" not in r], COLUMNS)
    for r in result["rows"]:
        if "error" in r:
            print(f"{result['model']} {r['name']}: FAILED {r['error']}")
    print(f"{result['model']}: chosen recipe within budget: {result['best_label']}", flush=True)


def main() -> int:
    import torch

    from medopt.bench import fingerprint, results_path

    args = _args()
    target = results_path("compress", args.mode, RESULTS)
    started = time.perf_counter()
    goals: list[dict[str, Any]] = []
    with LoadMonitor(own_load=float(torch.get_num_threads())) as load, tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            t0 = time.perf_counter()
            result = _compress(args, name, Path(tmp))
            result.update(args=vars(args), date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                          wall_seconds=time.perf_counter() - t0, load=load.summary(), fingerprint=fingerprint())
            _report(result)
            entries = _merged(target, result)
            goals = [g for m in entries for g in m["goals"]]
            path = write_results("compress", {"models": entries, "goals": goals}, mode=args.mode, load=load)
            print(f"wrote {path} ({len(entries)} models)", flush=True)
    for g in goals:
        value = g["value"] if isinstance(g["value"], (int, float)) else float("nan")
        print(f"goal {'MET ' if g['met'] else 'MISS'} {g['name']}: {value:.3f} (target {g['target']})")
    print(f"wall {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
