"""Named compression recipes: small compositions of prune / distil / export / quantize, each budget-checked.

Why a registry: the config names recipes (``compress.recipes``); an unknown name fails listing the valid ones.
Every recipe returns a ``CompressedModel`` with the artifact file, its size, params, MACs, the ratio chosen and
every attempt, plus predictors (numpy in, logits out) the engine times the same way as the baselines. The
candidate plumbing lives in ``candidate``; the distillation-into-a-student recipes in ``student``.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medopt.compress.budget import back_off, ratio_schedule, within_budget
from medopt.compress.candidate import (CompressedModel, Recipe, RecipeContext, SaveModel, calibrated_int8,
                                       export_checked, onnx_model, pickled_module, save_state_dict)
from medopt.compress.finetune import finetune, recalibrate_pruned
from medopt.compress.measure import Predictor, split_bacc, torch_predictor
from medopt.compress.prune import count_params_macs, prune_structured, unstructured_prune
from medopt.compress.quantize import qat_pt2e, quantize_pt2e, save_graph
from medopt.compress.student import distill, distill_int8
from medopt.registry import Registry

__all__ = ["RECIPES", "CompressedModel", "Recipe", "RecipeContext", "SaveModel", "calibrated_int8", "export_checked",
           "onnx_model", "pickled_module", "save_state_dict"]

logger = logging.getLogger(__name__)

RECIPES: Registry[Recipe] = Registry("compression recipe")


def _prune_attempt(ctx: RecipeContext, ratio: float, tune: bool) -> tuple[nn.Module, float]:
    """Prune a copy of the fp32 model to ``ratio``, fine-tuning (and distilling) between steps when ``tune``.

    Attempts are kept in the context: ``prune30+ft``, ``prune30+ft+int8`` and ``prune50+ft+int8`` back off
    through the same ratios, and each (ratio, tune) is pruned and fine-tuned once. Recipes never modify the result.
    """
    if (ratio, tune) in ctx._pruned:
        return ctx._pruned[(ratio, tune)]
    ctx._pruned[(ratio, tune)] = _prune_fresh(ctx, ratio, tune)
    return ctx._pruned[(ratio, tune)]


def _prune_fresh(ctx: RecipeContext, ratio: float, tune: bool) -> tuple[nn.Module, float]:
    model = copy.deepcopy(ctx.model).eval()
    teacher = ctx.model if (tune and ctx.cfg.distill) else None

    def hook(m: nn.Module, _step: int) -> None:
        recalibrate_pruned(m, ctx.data, ctx.cfg.bn_recalibration_samples)
        if tune:
            finetune(m, ctx.data, ctx.train, ctx.cfg, teacher=teacher)

    grad = ctx.data.labelled_batch(min(32, len(ctx.data.dataset.train))) if ctx.cfg.prune_importance == "taylor" else None
    prune_structured(model, ctx.example(), ctx.cfg, ratio=ratio, grad_batch=grad, after_step=hook)
    return model, split_bacc(torch_predictor(model), ctx.data)


def pruned(ctx: RecipeContext, start: float, tune: bool) -> tuple[nn.Module, Any]:
    """Structured pruning at ``start`` ratio, backed off until the validation bacc loss fits the budget."""
    ratios = ratio_schedule(start, ctx.cfg.backoff_step, min(ctx.cfg.min_ratio, start))
    result = back_off(ratios, lambda r: _prune_attempt(ctx, r, tune), baseline_bacc=ctx.baseline_val_bacc,
                      budget=ctx.cfg.accuracy_budget)
    return result.value, result


def _quantized_pruned(ctx: RecipeContext, model: nn.Module, folder: Path) -> tuple[Path, float, list[dict[str, Any]]]:
    """Export ``model`` to ``folder`` and quantize it: (int8 file, its val bacc, calibration attempts)."""
    fp32 = export_checked(ctx, model, folder / "model.fp32.onnx")
    return calibrated_int8(ctx, fp32, folder)


def pruned_int8(ctx: RecipeContext, start: float, tune: bool, folder: Path) -> tuple[nn.Module, Path, Any]:
    """Pruning + ORT int8, backed off over the pruning ratio until the *int8* model fits the budget.

    Why not pick the ratio on the pruned fp32 model and quantize after: int8 adds its own loss, and ResNet-50
    pruned 20% fitted the budget in fp32 (val bacc +0.3 points) but not after int8 (-2.1). A ratio whose pruned
    fp32 model already misses the budget is not quantized.
    """
    ratios = ratio_schedule(start, ctx.cfg.backoff_step, min(ctx.cfg.min_ratio, start))
    attempts: list[dict[str, Any]] = []

    def attempt(ratio: float) -> tuple[tuple[nn.Module, Path | None], float]:
        model, bacc = _prune_attempt(ctx, ratio, tune)
        attempts.append({"ratio": ratio, "pruned_val_bacc": bacc,
                         "within_budget": within_budget(ctx.baseline_val_bacc, bacc, ctx.cfg.accuracy_budget)})
        if not attempts[-1]["within_budget"]:
            return (model, None), bacc
        q, q_bacc, calibrations = _quantized_pruned(ctx, model, folder / f"ratio{round(ratio * 100)}")
        attempts.extend(calibrations)
        return (model, q), q_bacc

    result = back_off(ratios, attempt, baseline_bacc=ctx.baseline_val_bacc, budget=ctx.cfg.accuracy_budget)
    model, q = result.value
    if q is None:  # the mildest ratio missed even before int8: quantize it anyway, so the row shows its cost
        q, _, calibrations = _quantized_pruned(ctx, model, folder / f"ratio{round(result.ratio * 100)}")
        attempts.extend(calibrations)
    final = q.replace(folder / "model.onnx")
    return model, final, dataclasses.replace(result, attempts=attempts)


def _prune_recipe(name: str, ratio: float, tune: bool, int8: bool) -> Recipe:
    def recipe(ctx: RecipeContext) -> CompressedModel:
        folder = ctx.recipe_dir(name)
        if int8:
            model, path, result = pruned_int8(ctx, ratio, tune, folder)
        else:
            model, result = pruned(ctx, ratio, tune)
            path = export_checked(ctx, model, folder / "model.onnx")
        notes = [] if result.within_budget else [f"no ratio down to {result.ratio} met the budget"]
        cm = onnx_model(ctx, name, path, model, ratio=result.ratio, attempts=result.attempts, notes=notes)
        cm.within_budget = cm.within_budget and result.within_budget  # the back-off's verdict holds for the row
        return cm

    recipe.__doc__ = f"Structured pruning {ratio:.0%}{' + fine-tune' if tune else ''}{' + ORT int8' if int8 else ''}."
    return recipe


def fp32_onnx(ctx: RecipeContext) -> CompressedModel:
    """The fp32 model exported to ONNX (dynamic batch), run by ONNX Runtime."""
    return onnx_model(ctx, "fp32-onnx", ctx.fp32_onnx(), ctx.model)


def int8_static(ctx: RecipeContext) -> CompressedModel:
    """ONNX Runtime static int8 (QDQ, per-channel weights) calibrated on training images."""
    q, _, attempts = calibrated_int8(ctx, ctx.fp32_onnx(), ctx.recipe_dir("int8-static"))
    cm = onnx_model(ctx, "int8-static", q, ctx.model, attempts=attempts)
    if not cm.within_budget:
        cm.notes.append("ORT post-training int8 exceeds the accuracy budget with every calibration tried "
                        "(QAT is available via int8-pt2e)")
    return cm


def _pt2e_predictors(ctx: RecipeContext, graph: nn.Module) -> dict[str, Predictor]:
    predictors = {"eager": torch_predictor(graph)}
    if ctx.cfg.pt2e_compile:
        predictors["compiled"] = torch_predictor(torch.compile(graph))
    return predictors


def int8_pt2e(ctx: RecipeContext) -> CompressedModel:
    """PyTorch PT2E static int8 (X86InductorQuantizer); QAT when post-training int8 exceeds the budget."""
    calib = ctx.data.calibration(ctx.cfg.calibration_samples)
    graph = quantize_pt2e(copy.deepcopy(ctx.model), ctx.example(), calib)
    bacc = split_bacc(torch_predictor(graph), ctx.data)
    attempts: list[dict[str, Any]] = [{"method": "ptq", "val_bacc": bacc}]
    notes: list[str] = []
    if not within_budget(ctx.baseline_val_bacc, bacc, ctx.cfg.accuracy_budget):
        notes.append(f"PTQ lost {ctx.baseline_val_bacc - bacc:.4f} val bacc; ran quantization-aware fine-tuning")
        graph = qat_pt2e(copy.deepcopy(ctx.model), ctx.example(), ctx.data, ctx.train, ctx.cfg)
        bacc = split_bacc(torch_predictor(graph), ctx.data)
        attempts.append({"method": "qat", "val_bacc": bacc})
    path = save_graph(graph, ctx.example(), ctx.recipe_dir("int8-pt2e") / "model.pt2")
    params, macs = count_params_macs(ctx.model, ctx.example())
    return CompressedModel("int8-pt2e", "pytorch", path, params, macs, bacc, ctx.baseline_val_bacc,
                           within_budget(ctx.baseline_val_bacc, bacc, ctx.cfg.accuracy_budget),
                           _pt2e_predictors(ctx, graph), attempts=attempts, notes=notes,
                           footprint_source=("torch-export", path))


def _unstructured_attempt(ctx: RecipeContext, amount: float) -> tuple[tuple[nn.Module, float], float]:
    model = copy.deepcopy(ctx.model).eval()
    sparsity = unstructured_prune(model, amount)
    return (model, sparsity), split_bacc(torch_predictor(model), ctx.data)


def unstructured50(ctx: RecipeContext) -> CompressedModel:
    """Unstructured L1 magnitude pruning of 50% of conv/linear weights (dense kernels: a size/accuracy baseline)."""
    ratios = ratio_schedule(0.5, ctx.cfg.backoff_step, min(ctx.cfg.min_ratio, 0.5))
    result = back_off(ratios, lambda r: _unstructured_attempt(ctx, r), baseline_bacc=ctx.baseline_val_bacc,
                      budget=ctx.cfg.accuracy_budget)
    model, sparsity = result.value
    path = ctx.recipe_dir("unstructured50") / "model.pt"
    ctx.save_model(model, path)
    params, macs = count_params_macs(model, ctx.example())
    notes = [f"weight sparsity {sparsity:.3f}; zeros are stored and computed densely (no speed-up expected)"]
    return CompressedModel("unstructured50", "pytorch", path, params, macs, result.val_bacc, ctx.baseline_val_bacc,
                           result.within_budget, {"eager": torch_predictor(model)}, ratio=result.ratio,
                           attempts=result.attempts, notes=notes,
                           footprint_source=("torch-module", pickled_module(model, path.with_suffix(".module.pt"))))


def register_defaults(registry: Registry[Recipe]) -> None:
    """Register the built-in recipes (called once below)."""
    registry.add("fp32-onnx", fp32_onnx)
    registry.add("int8-static", int8_static)
    registry.add("int8-pt2e", int8_pt2e)
    registry.add("unstructured50", unstructured50)
    registry.add("distill", distill)
    registry.add("distill+int8", distill_int8)
    for pct in (10, 20, 30, 40, 50):
        r = pct / 100
        registry.add(f"prune{pct}", _prune_recipe(f"prune{pct}", r, tune=False, int8=False))
        registry.add(f"prune{pct}+ft", _prune_recipe(f"prune{pct}+ft", r, tune=True, int8=False))
        registry.add(f"prune{pct}+int8", _prune_recipe(f"prune{pct}+int8", r, tune=False, int8=True))
        registry.add(f"prune{pct}+ft+int8", _prune_recipe(f"prune{pct}+ft+int8", r, tune=True, int8=True))


register_defaults(RECIPES)
