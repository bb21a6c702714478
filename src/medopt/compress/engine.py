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

from medopt.compress.split_inputs import CompressData
from medopt.compress.errors import CompressError
from medopt.compress.footprint import FootprintKind, footprint
from medopt.compress.measure import (Predictor, interleaved_latency, onnx_predictor, resolve_threads, score_candidate,
                                     split_bacc, torch_predictor)
from medopt.compress.prune import count_params_macs
from medopt.compress.recipes import (RECIPES, CompressedModel, RecipeContext, SaveModel, pickled_module,
                                     save_state_dict)
from medopt.config import CompressConfig, ModelConfig, TrainConfig
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
    rounds: int = 5
    """Interleaved passes over all candidates (the runs are spread over them)."""
    memory: bool = True
    """Measure each candidate's peak memory in a fresh process (a few seconds per candidate)."""


@dataclass
class CompressOutcome:
    """Rows (baselines first), the compressed models by recipe, and the best recipe within budget (or None)."""

    rows: list[dict[str, Any]]
    models: dict[str, CompressedModel]
    best: str | None
    threads: int


@dataclass
class _Candidate:
    """One row in the making: its scores, its predictors by variant, and what a fresh process loads for memory."""

    name: str
    scores: dict[str, dict[str, Any]]
    predictors: dict[str, Predictor]
    footprint_source: tuple[FootprintKind, Path] | None
    extra: dict[str, Any]


def _row(cand: _Candidate, latency: dict[str, dict[str, dict[str, Any]]], sizes: tuple[int, ...]) -> dict[str, Any]:
    """The row of a candidate: its fastest variant at the smallest batch, with that variant's scores."""
    b1 = str(min(sizes))
    variant = min(cand.predictors, key=lambda v: latency[v][b1]["median_ms"])
    scored = cand.scores[variant]
    row: dict[str, Any] = {"name": cand.name, "file_bytes": scored["file_bytes"]}
    for b in sizes:
        row[f"latency_b{b}_ms"] = latency[variant][str(b)]["median_ms"]
        row[f"latency_b{b}_p95_ms"] = latency[variant][str(b)]["p95_ms"]
    row.update({k: scored["metrics"][k] for k in _SCALARS if k in scored["metrics"]})
    paired = scored.get("paired", {})
    if "mcnemar" in paired:
        row["mcnemar_p"] = paired["mcnemar"]["p_value"]
    if "delong" in paired:
        row["delong_p"] = paired["delong"]["p_value"]
    row["metrics"] = scored["metrics"]
    row["variant"] = variant
    row["variant_latency_b1_ms"] = {v: latency[v][b1]["median_ms"] for v in cand.predictors}
    row.update(cand.extra)
    return row


def _score_recipe(cm: CompressedModel, data: CompressData, reference: tuple[np.ndarray, np.ndarray]) -> _Candidate:
    """Score every variant on TEST; a variant that fails (e.g. torch.compile on this CPU) is noted and dropped."""
    scores: dict[str, dict[str, Any]] = {}
    for variant, predictor in cm.predictors.items():
        try:
            scores[variant] = score_candidate(predictor, data, reference=reference, path=cm.path)
        except Exception as exc:
            cm.notes.append(f"variant {variant} failed: {type(exc).__name__}: {exc}")
    if not scores:
        raise CompressError(f"recipe {cm.recipe}: no variant could be measured ({'; '.join(cm.notes)})")
    return _Candidate(cm.recipe, scores, {v: cm.predictors[v] for v in scores}, cm.footprint_source, cm.summary())


def _add_ratios(rows: list[dict[str, Any]], sizes: tuple[int, ...]) -> None:
    eager, ort = rows[0], rows[1]
    for row in rows:
        for b in sizes:
            key = f"latency_b{b}_ms"
            row[f"speedup_b{b}_vs_eager"] = eager[key] / row[key]
            row[f"speedup_b{b}_vs_ort"] = ort[key] / row[key]
        if row.get("file_bytes"):
            row["size_ratio_vs_onnx"] = ort["file_bytes"] / row["file_bytes"]
        if ort.get("peak_memory_mb") and row.get("peak_memory_mb"):
            row["memory_ratio_vs_ort"] = ort["peak_memory_mb"] / row["peak_memory_mb"]
        if not row.get("baseline") and row[f"speedup_b{min(sizes)}_vs_ort"] < 1.0:
            row.setdefault("notes", []).append(f"slower than ONNX Runtime fp32 at batch {min(sizes)}")


def _baselines(ctx: RecipeContext) -> tuple[list[_Candidate], tuple[np.ndarray, np.ndarray]]:
    data, model = ctx.data, ctx.model
    eager = score_candidate(torch_predictor(model), data)
    reference = (data.labels("test"), eager["_test_prob"])
    onnx = ctx.fp32_onnx()
    ort = score_candidate(onnx_predictor(onnx, ctx.threads), data, reference=reference, path=onnx)
    params, macs = count_params_macs(model, ctx.example())
    common = {"params": params, "macs": macs, "val_bacc": ctx.baseline_val_bacc, "val_bacc_loss": 0.0,
              "within_budget": True, "baseline": True}
    module = pickled_module(model, ctx.recipe_dir("fp32") / "model.module.pt")
    return [_Candidate(BASELINE_EAGER, {"eager": eager}, {"eager": torch_predictor(model)}, ("torch-module", module),
                       {"kind": "pytorch", **common}),
            _Candidate(BASELINE_ORT, {"ort": ort}, {"ort": onnx_predictor(onnx, ctx.threads)}, ("onnx", onnx),
                       {"kind": "onnx", **common})], reference


def _latencies(cands: list[_Candidate], data: CompressData, ms: MeasureSettings) -> dict[str, dict[str, Any]]:
    """Every variant of every candidate timed round-robin: {candidate: {variant: {batch: stats}}}."""
    flat = {f"{c.name}\t{v}": p for c in cands for v, p in c.predictors.items()}
    timed = interleaved_latency(flat, data.input_shape, ms.batch_sizes, ms.runs, ms.warmup, ms.rounds)
    out: dict[str, dict[str, Any]] = {c.name: {} for c in cands}
    for key, stats in timed.items():
        name, variant = key.split("\t")
        out[name][variant] = stats
    return out


def _footprints(rows: list[dict[str, Any]], cands: list[_Candidate], data: CompressData, threads: int,
                batch: int) -> None:
    """Peak memory of each candidate at ``batch``, each measured in a fresh process (see ``footprint``)."""
    for row, cand in zip(rows, cands):
        if cand.footprint_source is None:
            continue
        kind, path = cand.footprint_source
        try:
            fp = footprint(kind, path, data.input_shape, batch, threads)
        except CompressError as exc:
            row.setdefault("notes", []).append(str(exc))
            continue
        row.update({"peak_memory_mb": fp["model_peak_mb"], "peak_rss_mb": fp["peak_rss_mb"],
                    "peak_memory_batch": batch, "peak_memory_of": kind})


def compress_model(
    model: nn.Module,
    data: CompressData,
    cfg: CompressConfig,
    train: TrainConfig,
    *,
    workdir: Path,
    settings: MeasureSettings = MeasureSettings(),
    save_model: SaveModel = save_state_dict,
    model_config: ModelConfig | None = None,
) -> CompressOutcome:
    """Measure both fp32 baselines, run every ``cfg.recipes`` entry and pick the fastest (batch 1) within budget.

    All candidates are built first, then timed together round-robin (``interleaved_latency``) so machine noise
    hits them alike; each one's peak memory is measured in a fresh process. A recipe that fails with a
    ``CompressError`` (e.g. PT2E unsupported for the model) becomes a row with ``error`` set (after the measured
    rows); unknown recipe names raise before any work starts.
    """
    recipes = {name: RECIPES.get(name) for name in cfg.recipes}
    threads = resolve_threads(cfg.num_threads)
    torch.set_num_threads(threads)
    model = model.cpu().eval()
    baseline_bacc = split_bacc(torch_predictor(model), data)
    ctx = RecipeContext(model, data, cfg, train, workdir, threads, baseline_bacc, save_model, model_config)
    cands, reference = _baselines(ctx)
    models: dict[str, CompressedModel] = {}
    failed: list[dict[str, Any]] = []
    for name, recipe in recipes.items():
        logger.info("recipe %s", name)
        try:
            models[name] = recipe(ctx)
            cands.append(_score_recipe(models[name], data, reference))
        except CompressError as exc:
            logger.warning("recipe %s failed: %s", name, exc)
            models.pop(name, None)
            failed.append({"name": name, "error": f"{type(exc).__name__}: {exc}", "within_budget": False})
    latency = _latencies(cands, data, settings)
    measured = [_row(c, latency[c.name], settings.batch_sizes) for c in cands]
    if settings.memory:
        _footprints(measured, cands, data, threads, max(settings.batch_sizes))
    _add_ratios(measured, settings.batch_sizes)
    b1 = f"latency_b{min(settings.batch_sizes)}_ms"
    ok = [r for r in measured if not r.get("baseline") and r["within_budget"]]
    best = min(ok, key=lambda r: r[b1])["name"] if ok else None
    logger.info("best recipe within budget: %s", best)
    return CompressOutcome(measured + failed, models, best, threads)
