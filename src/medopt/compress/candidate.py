"""One compression candidate: the context every recipe reads, the result it returns, and the shared steps.

Why a module of its own: the built-in recipes (``recipes``) and the distillation recipes (``student``) both build
on these (export checked against PyTorch, scoring on validation against the accuracy budget, calibrated int8), and
the registry imports both without a cycle.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from medopt.compress.budget import within_budget
from medopt.compress.split_inputs import CompressData
from medopt.compress.export import check_onnx_agreement, export_onnx
from medopt.compress.footprint import FootprintKind
from medopt.compress.measure import Predictor, onnx_predictor, split_bacc
from medopt.compress.output_correction import correct_output_bias
from medopt.compress.prune import count_params_macs
from medopt.compress.quantize import quantize_onnx_static
from medopt.config import CompressConfig, ModelConfig, TrainConfig

logger = logging.getLogger(__name__)

SaveModel = Callable[[nn.Module, Path], None]


def save_state_dict(model: nn.Module, path: Path) -> None:
    """Default PyTorch artifact writer: the state dict (the stage passes ``save_model_file`` instead)."""
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, path)


def pickled_module(model: nn.Module, path: Path) -> Path:
    """The whole module pickled (class and weights), for the fresh-process memory measurement only."""
    torch.save(model, path)
    return path


@dataclass
class RecipeContext:
    """What every recipe reads: the trained fp32 model (never modified), data, config and a work folder."""

    model: nn.Module
    data: CompressData
    cfg: CompressConfig
    train: TrainConfig
    workdir: Path
    threads: int
    baseline_val_bacc: float
    save_model: SaveModel = save_state_dict
    model_config: ModelConfig | None = None
    """The teacher's model settings (stem, drop rate), which a distillation student inherits."""
    _fp32_onnx: Path | None = None
    _student: tuple[nn.Module, float] | None = None
    _pruned: dict[tuple[float, bool], tuple[nn.Module, float]] = field(default_factory=dict)

    def example(self, batch: int = 2) -> torch.Tensor:
        """A fixed seeded input batch (tracing, export, agreement checks)."""
        gen = torch.Generator().manual_seed(0)
        return torch.randn((batch, *self.data.input_shape), generator=gen)

    def fp32_onnx(self) -> Path:
        """The fp32 ONNX export of the model (made once, checked against PyTorch)."""
        if self._fp32_onnx is None:
            self._fp32_onnx = export_checked(self, self.model, self.workdir / "fp32" / "model.onnx")
        return self._fp32_onnx

    def recipe_dir(self, name: str) -> Path:
        path = self.workdir / name.replace("+", "_")
        path.mkdir(parents=True, exist_ok=True)
        return path


@dataclass
class CompressedModel:
    """One recipe's output. ``predictors`` maps a variant ("ort", "eager", "compiled") to a callable to time."""

    recipe: str
    kind: Literal["onnx", "pytorch"]
    path: Path
    params: int
    macs: float
    val_bacc: float
    baseline_val_bacc: float
    within_budget: bool
    predictors: dict[str, Predictor]
    ratio: float | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    footprint_source: tuple[FootprintKind, Path] | None = None
    """What a fresh process loads to measure peak memory (defaults to the ONNX file for ONNX candidates)."""

    def __post_init__(self) -> None:
        if self.footprint_source is None and self.kind == "onnx":
            self.footprint_source = ("onnx", self.path)

    @property
    def file_bytes(self) -> int:
        return self.path.stat().st_size

    def summary(self) -> dict[str, Any]:
        """JSON-friendly description (no callables)."""
        return {"recipe": self.recipe, "kind": self.kind, "file": self.path.name, "params": self.params,
                "macs": self.macs, "file_bytes": self.file_bytes, "ratio": self.ratio, "val_bacc": self.val_bacc,
                "val_bacc_loss": self.baseline_val_bacc - self.val_bacc, "within_budget": self.within_budget,
                "attempts": self.attempts, "notes": self.notes, "variants": sorted(self.predictors)}


Recipe = Callable[[RecipeContext], CompressedModel]


def export_checked(ctx: RecipeContext, model: nn.Module, path: Path) -> Path:
    """Export to ONNX and raise unless it agrees with PyTorch on batch 1 and batch 5 (dynamic batch).

    The check runs on real validation images, not noise: a pruned and fine-tuned network can map Gaussian noise to
    logits in the tens of thousands, where fp32 summation order alone moves them past the tolerance.
    """
    export_onnx(model, path, input_shape=ctx.data.input_shape, opset=ctx.cfg.onnx_opset)
    images = next(ctx.data.batches("val", chunk=5), None)
    if images is None:  # no validation split: fall back to the fixed seeded batch
        images = ctx.example(5)
    for batch in (1, 5):
        check_onnx_agreement(model, path, images[:batch])
    return path


def onnx_model(ctx: RecipeContext, name: str, path: Path, model: nn.Module, **kw: Any) -> CompressedModel:
    """An ONNX candidate of ``model`` at ``path``, scored on validation against the accuracy budget."""
    predictor = onnx_predictor(path, ctx.threads)
    bacc = split_bacc(predictor, ctx.data)
    params, macs = count_params_macs(model, ctx.example())
    return CompressedModel(name, "onnx", path, params, macs, bacc, ctx.baseline_val_bacc,
                           within_budget(ctx.baseline_val_bacc, bacc, ctx.cfg.accuracy_budget), {"ort": predictor}, **kw)


def calibrated_int8(ctx: RecipeContext, fp32: Path, folder: Path) -> tuple[Path, float, list[dict[str, Any]]]:
    """ORT static int8 of ``fp32``, escalating through calibrations and output bias correction until one fits.

    The order: each of ``compress.calibration_methods`` in turn and, after each method that misses the budget,
    the same file with its output bias corrected (``compress.int8_output_correction``).

    Returns the kept file (the first within budget, else the best by validation bacc), its val bacc, and every
    attempt. Why a back-off: MinMax keeps every range and is fastest to calibrate; when a few extreme activations
    make it collapse, percentile or entropy clipping can recover. Why the correction only after a miss: it puts
    the int8 model's mean logits back on the fp32 model's, which repairs an operating point quantization moved
    (pruned ResNet-50: -3.7 -> -0.5 validation points) but also undoes a shift that happened to help: MobileNetV2's
    uncorrected int8 scored 1.6 points above its fp32 model on validation, corrected 0.9 below.
    """
    calibration = ctx.data.calibration(ctx.cfg.calibration_samples)
    attempts: list[dict[str, Any]] = []
    scored: list[tuple[float, Path]] = []

    def score(path: Path, attempt: dict[str, Any]) -> bool:
        bacc = split_bacc(onnx_predictor(path, ctx.threads), ctx.data)
        ok = within_budget(ctx.baseline_val_bacc, bacc, ctx.cfg.accuracy_budget)
        attempts.append({**attempt, "val_bacc": bacc, "within_budget": ok})
        scored.append((bacc, path))
        return ok

    for method in ctx.cfg.calibration_methods:
        path = quantize_onnx_static(fp32, folder / f"model.{method}.onnx", calibration, method=method)
        if score(path, {"calibration": method, "output_correction": False}):
            break
        if ctx.cfg.int8_output_correction:
            corrected = folder / f"model.{method}.corrected.onnx"
            shutil.copyfile(path, corrected)
            offset = correct_output_bias(fp32, corrected, calibration, ctx.threads)
            if score(corrected, {"calibration": method, "output_correction": True,
                                 "output_offset": [float(v) for v in offset]}):
                break
    kept = scored[-1] if attempts[-1]["within_budget"] else max(scored, key=lambda s: s[0])
    final = folder / "model.onnx"
    kept[1].replace(final)
    for leftover in folder.glob("model.*.onnx"):
        if leftover.name != "model.fp32.onnx":
            leftover.unlink()
    return final, kept[0], attempts
