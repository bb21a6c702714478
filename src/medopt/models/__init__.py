"""Model factory: a registry of timm and tiny architectures, local pretrained weights, transfer modes.

Every model in medopt is built through ``create_model(cfg.model)``.
"""

from __future__ import annotations

from medopt.models import zoo  # noqa: F401  (importing it registers the models)
from medopt.models.factory import create_model
from medopt.models.model_spec import MODELS, ModelError, ModelSpec
from medopt.models.transfer import (
    backbone_blocks,
    freeze_frozen_batchnorm,
    set_transfer_mode,
    trainable_parameter_count,
)
from medopt.models.pretrained import WeightsReport, load_pretrained_weights

__all__ = [
    "MODELS",
    "ModelError",
    "ModelSpec",
    "WeightsReport",
    "backbone_blocks",
    "create_model",
    "freeze_frozen_batchnorm",
    "load_pretrained_weights",
    "set_transfer_mode",
    "trainable_parameter_count",
]
