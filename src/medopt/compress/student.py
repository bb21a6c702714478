"""Knowledge distillation into a student from the model registry, then the student's own int8.

Why a student: some architectures gain little or even lose from int8 on CPUs without VNNI: EfficientNet-B0's
squeeze-excite blocks and SiLU put Dequantize/Quantize pairs around every block (0.93x of fp32 on an AVX2-only
machine, ``benchmarks/int8_profile.py``). A student without them (EfficientNet-Lite0: ReLU6, no squeeze-excite;
MobileNetV2) learns the teacher's outputs by distillation, and its int8 runs on the fast kernels. The student keeps
the teacher's model settings (stem, drop rate) and geometry, so the artifact serves exactly like the teacher's.
"""

from __future__ import annotations

import logging

from torch import nn

from medopt.compress.errors import CompressError
from medopt.compress.finetune import finetune
from medopt.compress.measure import split_bacc, torch_predictor
from medopt.compress.candidate import CompressedModel, RecipeContext, calibrated_int8, export_checked, onnx_model
from medopt.models.geometry import ModelGeometry, build_model

logger = logging.getLogger(__name__)


def student_pretrained(name: str, setting: str) -> bool:
    """Whether the student starts from ImageNet weights: "auto" when the registry has an offline source for it."""
    if setting != "auto":
        return setting == "yes"
    from medopt.models import MODELS

    return MODELS.get(name).weights is not None


def build_student(ctx: RecipeContext) -> nn.Module:
    """``compress.student`` with the teacher's settings and geometry (input size, channels, classes).

    Raises:
        CompressError: the context carries no teacher model config (a model built in memory), or the student
            name is not in the registry.
    """
    if ctx.model_config is None:
        raise CompressError("distillation recipes need the teacher's model config (the stored model file has it)")
    name = ctx.cfg.student
    from medopt.models import MODELS

    if name not in MODELS:
        raise CompressError(f"compress.student {name!r} is not a registered model (see `medopt models`)")
    config = ctx.model_config.model_copy(update={
        "name": name, "pretrained": student_pretrained(name, ctx.cfg.student_pretrained), "weights_path": None,
        "transfer": "finetune"})
    geometry = ctx.data.geometry or ModelGeometry.from_dataset(ctx.data.preprocess, ctx.data.dataset)
    return build_model(config, geometry)


def distilled_student(ctx: RecipeContext) -> tuple[nn.Module, float]:
    """The student trained on the teacher's soft targets (and the labels), once per context; (model, val bacc)."""
    if ctx._student is None:
        student = build_student(ctx)
        tune = ctx.cfg.model_copy(update={"finetune_lr": ctx.cfg.student_lr})
        finetune(student, ctx.data, ctx.train, tune, teacher=ctx.model, epochs=ctx.cfg.student_epochs,
                 keep_if_worse=True)
        bacc = split_bacc(torch_predictor(student), ctx.data)
        logger.info("student %s distilled %d epochs: val bacc %.4f (teacher %.4f)", ctx.cfg.student,
                    ctx.cfg.student_epochs, bacc, ctx.baseline_val_bacc)
        ctx._student = (student, bacc)
    return ctx._student


def _notes(ctx: RecipeContext) -> list[str]:
    return [f"student {ctx.cfg.student} distilled from the fp32 model for {ctx.cfg.student_epochs} epochs "
            f"(alpha {ctx.cfg.distill_alpha}, T {ctx.cfg.distill_temperature})"]


def distill(ctx: RecipeContext) -> CompressedModel:
    """The distilled student, fp32, run by ONNX Runtime."""
    student, _ = distilled_student(ctx)
    path = export_checked(ctx, student, ctx.recipe_dir("distill") / "model.onnx")
    return onnx_model(ctx, "distill", path, student, notes=_notes(ctx))


def distill_int8(ctx: RecipeContext) -> CompressedModel:
    """The distilled student, ORT static int8 (the same calibration back-off as int8-static)."""
    student, _ = distilled_student(ctx)
    folder = ctx.recipe_dir("distill+int8")
    fp32 = export_checked(ctx, student, folder / "model.fp32.onnx")
    q, _, attempts = calibrated_int8(ctx, fp32, folder)
    return onnx_model(ctx, "distill+int8", q, student, attempts=attempts, notes=_notes(ctx))

