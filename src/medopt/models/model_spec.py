"""What the model registry stores: one frozen ``ModelSpec`` per name, and the shared ``ModelError``.

Specs are pure data, so listing or validating names (CLI, config checks) never builds a network.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch-free at run time: the slim predictor image imports ModelError without torch
    from torch import nn

from medopt.errors import MedoptError
from medopt.registry import Registry

FAMILIES = (
    "resnet",
    "vgg",
    "densenet",
    "efficientnet",
    "mobilenet",
    "convnext",
    "swin",
    "maxvit",
    "vit",
    "tiny",
)

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


class ModelError(MedoptError, ValueError):
    """A model cannot be built or loaded as configured; the message names the field and the constraint."""


@dataclass(frozen=True)
class ModelSpec:
    """How to build one registered model and what its pretrained weights expect.

    Attributes:
        name: registry name, used as ``model.name`` in configs.
        timm_name: timm architecture built with ``pretrained=False`` (None when ``builder`` builds it).
        family: architecture family; decides the stem rules and what "blocks" means for ``last_n``.
        default_input_size: square input side used when the caller gives none.
        fixed_input_size: the network is built for one input size (timm ``img_size``), e.g. swin/maxvit/vit.
        input_multiple: the input side must be a positive multiple of this (patch size, total window stride).
        weights: local source of pretrained weights (``"package:<name>"``) or None.
        builder: keyword-only factory ``(in_chans, num_classes, drop_rate[, img_size]) -> nn.Module``.
        mean: per-channel RGB mean (in [0, 1] units) the pretrained weights were trained with.
        std: per-channel RGB std matching ``mean``.
    """

    name: str
    timm_name: str | None
    family: str
    default_input_size: int
    fixed_input_size: bool = False
    input_multiple: int = 1
    weights: str | None = None
    builder: Callable[..., nn.Module] | None = None
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ModelError(f"model spec '{self.name}': family '{self.family}' is not one of {', '.join(FAMILIES)}")
        if (self.timm_name is None) == (self.builder is None):
            raise ModelError(f"model spec '{self.name}': give exactly one of timm_name and builder")
        if self.default_input_size < 1 or self.input_multiple < 1:
            raise ModelError(f"model spec '{self.name}': default_input_size and input_multiple must be >= 1")
        if self.default_input_size % self.input_multiple:
            raise ModelError(
                f"model spec '{self.name}': default_input_size {self.default_input_size} "
                f"is not a multiple of {self.input_multiple}"
            )


MODELS: Registry[ModelSpec] = Registry("model")
