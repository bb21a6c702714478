"""Run recipes against two fp32 baselines (PyTorch eager, ONNX Runtime) and tabulate them side by side.

Why one engine for the stage and the benchmark: the numbers a user sees in the store and the numbers the benchmark
prints come from the same measurements, with one thread count for every candidate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medopt.compress.data import CompressData
from medopt.compress.errors import CompressError
from medopt.compress.measure import measure_candidate, onnx_predictor, resolve_threads, split_bacc, torch_predictor
from medopt.compress.prune import count_params_macs
from medopt.compress.recipes import RECIPES, CompressedModel, RecipeContext, SaveModel, save_state_dict
from medopt.config import CompressConfig, TrainConfig
from medopt.evaluate.metrics import SCALAR_METRICS as _SCALARS

logger = logging.getLogger(__name__)

BASELINE_EAGER = "fp32-eager"
BASELINE_ORT = "fp32-ort"


@dataclass(frozen=True)
class MeasureSettings:
    """Latency protocol shared by every candidate."""

    runs: int = 30
    warmup: int = 5
    batch_sizes: tuple[int, ...] = (1, 32)


@dataclass
class CompressOutcome:
    """Rows (baselines first), the compressed models by recipe, and the best recipe within budget (or None)."""

    rows: list[dict[str, Any]]
    models: dict[str, CompressedModel]
    best: str | None
    threads: int


def _row(name: str, measured: dict[str, Any], sizes: tuple[int, ...]) -> dict[str, Any]:
    row: dict[str, Any] = {"name": name, "file_bytes": measured["file_bytes"],
                           "peak_memory_mb": measured["peak_memory_mb"]}
    for b in sizes:
        row[f"latency_b{b}_ms"] = measured["latency"][str(b)]["median_ms"]
        row[f"latency_b{b}_p95_ms"] = measured["latency"][str(b)]["p95_ms"]
    row.update({k: measured["metrics"][k] for k in _SCALARS if k in measured["metrics"]})
    paired = measured.get("paired", {})
    if "mcnemar" in paired:
        row["mcnemar_p"] = paired["mcnemar"]["p_value"]
    if "delong" in paired:
        row["delong_p"] = paired["delong"]["p_value"]
    row["metrics"] = measured["metrics"]
    return row


def _measure_recipe(cm: CompressedModel, data: CompressData, ms: MeasureSettings,
                    reference: tuple[np.ndarray, np.ndarray]) -> dict[str, Any]:
    """Time every variant; the row reports the fastest at batch 1 and lists all of them."""
    variants: dict[str, dict[str, Any]] = {}
    for variant, predictor in cm.predictors.items():
        try:
            variants[variant] = measure_candidate(predictor, data, runs=ms.runs, warmup=ms.warmup,
                                                  batch_sizes=ms.batch_sizes, reference=reference, path=cm.path)
        except Exception as exc:  # e.g. torch.compile failing on this CPU: record it, keep the other variants
            cm.notes.append(f"variant {variant} failed: {type(exc).__name__}: {exc}")
    if not variants:
        raise CompressError(f"recipe {cm.recipe}: no variant could be measured ({'; '.join(cm.notes)})")
    b1 = str(min(ms.batch_sizes))
    best = min(variants, key=lambda v: variants[v]["latency"][b1]["median_ms"])
    row = _row(cm.recipe, variants[best], ms.batch_sizes)
    row["variant"] = best
    row["variant_latency_b1_ms"] = {v: m["latency"][b1]["median_ms"] for v, m in variants.items()}
    row.update(cm.summary())
    return row


def _add_ratios(rows: list[dict[str, Any]], sizes: tuple[int, ...]) -> None:
    eager, ort = rows[0], rows[1]
    for row in rows:
        for b in sizes:
            key = f"latency_b{b}_ms"
            row[f"speedup_b{b}_vs_eager"] = eager[key] / row[key]
            row[f"speedup_b{b}_vs_ort"] = ort[key] / row[key]
        if row.get("file_bytes"):
            row["size_ratio_vs_onnx"] = ort["file_bytes"] / row["file_bytes"]
        if not row.get("baseline") and row[f"speedup_b{min(sizes)}_vs_ort"] < 1.0:
            row.setdefault("notes", []).append(f"slower than ONNX Runtime fp32 at batch {min(sizes)}")


def _baselines(ctx: RecipeContext, ms: MeasureSettings) -> tuple[list[dict[str, Any]], tuple[np.ndarray, np.ndarray]]:
    data, model = ctx.data, ctx.model
    eager = measure_candidate(torch_predictor(model), data, runs=ms.runs, warmup=ms.warmup,
                              batch_sizes=ms.batch_sizes)
    reference = (data.labels("test"), eager["_test_prob"])
    onnx = ctx.fp32_onnx()
    ort = measure_candidate(onnx_predictor(onnx, ctx.threads), data, runs=ms.runs, warmup=ms.warmup,
                            batch_sizes=ms.batch_sizes, reference=reference, path=onnx)
    params, macs = count_params_macs(model, ctx.example())
    rows = [_row(BASELINE_EAGER, eager, ms.batch_sizes), _row(BASELINE_ORT, ort, ms.batch_sizes)]
    for row, kind in zip(rows, ("pytorch", "onnx")):
        row.update({"kind": kind, "params": params, "macs": macs, "val_bacc": ctx.baseline_val_bacc,
                    "val_bacc_loss": 0.0, "within_budget": True, "baseline": True})
    return rows, reference


def compress_model(
    model: nn.Module,
    data: CompressData,
    cfg: CompressConfig,
    train: TrainConfig,
    *,
    workdir: Path,
    settings: MeasureSettings = MeasureSettings(),
    save_model: SaveModel = save_state_dict,
) -> CompressOutcome:
    """Measure both fp32 baselines, run every ``cfg.recipes`` entry and pick the fastest (batch 1) within budget.

    A recipe that fails with a ``CompressError`` (e.g. PT2E unsupported for the model) becomes a row with
    ``error`` set; unknown recipe names raise before any work starts.
    """
    recipes = {name: RECIPES.get(name) for name in cfg.recipes}
    threads = resolve_threads(cfg.num_threads)
    torch.set_num_threads(threads)
    model = model.cpu().eval()
    baseline_bacc = split_bacc(torch_predictor(model), data)
    ctx = RecipeContext(model, data, cfg, train, workdir, threads, baseline_bacc, save_model)
    rows, reference = _baselines(ctx, settings)
    models: dict[str, CompressedModel] = {}
    for name, recipe in recipes.items():
        logger.info("recipe %s", name)
        try:
            models[name] = recipe(ctx)
            rows.append(_measure_recipe(models[name], data, settings, reference))
        except CompressError as exc:
            logger.warning("recipe %s failed: %s", name, exc)
            models.pop(name, None)
            rows.append({"name": name, "error": f"{type(exc).__name__}: {exc}", "within_budget": False})
    measured = [r for r in rows if "error" not in r]
    _add_ratios(measured, settings.batch_sizes)
    b1 = f"latency_b{min(settings.batch_sizes)}_ms"
    ok = [r for r in measured if not r.get("baseline") and r["within_budget"]]
    best = min(ok, key=lambda r: r[b1])["name"] if ok else None
    logger.info("best recipe within budget: %s", best)
    return CompressOutcome(rows, models, best, threads)
