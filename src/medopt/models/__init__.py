"""Model factory: a registry of timm and tiny architectures, local pretrained weights, transfer modes.

Every model in medopt is built through ``create_model(cfg.model)``. Names are resolved lazily so that importing a
torch-free submodule (``medopt.models.geometry``, ``model_spec``) does not import torch and timm: the slim predictor
image has neither. Asking for any name below imports the factory, which registers the models (``zoo``).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

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

_WHERE = {
    "MODELS": "medopt.models.model_spec",
    "ModelError": "medopt.models.model_spec",
    "ModelSpec": "medopt.models.model_spec",
    "WeightsReport": "medopt.models.pretrained",
    "backbone_blocks": "medopt.models.transfer",
    "create_model": "medopt.models.factory",
    "freeze_frozen_batchnorm": "medopt.models.transfer",
    "load_pretrained_weights": "medopt.models.pretrained",
    "set_transfer_mode": "medopt.models.transfer",
    "trainable_parameter_count": "medopt.models.transfer",
}

if TYPE_CHECKING:  # pragma: no cover
    from medopt.models.factory import create_model
    from medopt.models.model_spec import MODELS, ModelError, ModelSpec
    from medopt.models.pretrained import WeightsReport, load_pretrained_weights
    from medopt.models.transfer import (
        backbone_blocks,
        freeze_frozen_batchnorm,
        set_transfer_mode,
        trainable_parameter_count,
    )


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'medopt.models' has no attribute {name!r}")
    import_module("medopt.models.factory")  # registers every model before MODELS or create_model is handed out
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
