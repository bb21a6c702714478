"""A trained model as one self-describing file: weights plus everything needed to rebuild and feed it.

The file carries the model's ``ModelGeometry`` (written at training, read by every later stage). Files written
before the geometry existed hold only its loose fields (in_chans, num_classes, input_size, class_names, task); they
are still read, the geometry being rebuilt from those fields and the saved preprocessing. New files keep writing the
loose fields too, so an older reader still opens them: the format stays ``medopt-model/1``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from medopt.config import ModelConfig, PreprocessConfig
from medopt.errors import MedoptError
from medopt.models.geometry import ModelGeometry, build_model, normalisation
from medopt.models.model_spec import ModelError


class ModelFileError(MedoptError, ValueError):
    """A model file is unreadable or not a medopt model."""


FORMAT = "medopt-model/1"
LEGACY_KEYS: tuple[str, ...] = ("in_chans", "num_classes", "input_size", "class_names", "task")
"""Geometry fields every model file carries at top level (the only record in files older than ``geometry``)."""


@dataclass(frozen=True)
class ModelBundle:
    """A rebuilt model with its build recipe, its preprocessing and what input it takes."""

    model: torch.nn.Module
    model_config: ModelConfig
    preprocess: PreprocessConfig
    geometry: ModelGeometry


def save_model_file(
    path: Path,
    model: torch.nn.Module,
    *,
    model_config: ModelConfig,
    preprocess: PreprocessConfig,
    geometry: ModelGeometry,
) -> None:
    """Write the model's weights with its build and preprocessing recipe (the caller stores it atomically)."""
    recorded = geometry.to_dict()
    torch.save(
        {
            "format": FORMAT,
            "model_config": model_config.model_dump(mode="json"),
            "preprocess": preprocess.model_dump(mode="json"),
            "geometry": recorded,
            **{k: recorded[k] for k in LEGACY_KEYS},
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        },
        path,
    )


def geometry_of(payload: Mapping[str, Any], preprocess: PreprocessConfig) -> ModelGeometry:
    """The geometry a model file records; for files older than the ``geometry`` entry, rebuilt from its fields.

    Raises:
        ModelFileError: neither the geometry nor its legacy fields are readable.
    """
    try:
        if "geometry" in payload:
            return ModelGeometry.from_dict(payload["geometry"])
        mean, std = normalisation(preprocess)
        return ModelGeometry.from_dict({**{k: payload[k] for k in LEGACY_KEYS}, "mean": mean, "std": std})
    except (KeyError, ModelError) as exc:
        raise ModelFileError(f"model file has no readable geometry ({exc})") from None


def load_model_file(path: Path, map_location: str | torch.device = "cpu") -> ModelBundle:
    """Rebuild a model saved by :func:`save_model_file` through ``create_model``; eval mode."""
    try:
        payload: dict[str, Any] = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise ModelFileError(f"{path} is not a readable model file: {exc.__class__.__name__}: {exc}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not a medopt model file (format {FORMAT} expected)")
    model_config = ModelConfig.model_validate(payload["model_config"]).model_copy(update={"pretrained": False})
    preprocess = PreprocessConfig.model_validate(payload["preprocess"])
    geometry = geometry_of(payload, preprocess)
    model = build_model(model_config, geometry)
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return ModelBundle(model=model, model_config=model_config, preprocess=preprocess, geometry=geometry)
