"""A trained model as one self-describing file: weights plus everything needed to rebuild and feed it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from medopt.config import ModelConfig, PreprocessConfig
from medopt.errors import MedoptError
from medopt.models import create_model


class CheckpointError(MedoptError, ValueError):
    """A model file is unreadable or not a medopt model."""


FORMAT = "medopt-model/1"


@dataclass(frozen=True)
class ModelBundle:
    model: torch.nn.Module
    model_config: ModelConfig
    preprocess: PreprocessConfig
    in_chans: int
    num_classes: int
    input_size: int
    class_names: tuple[str, ...]
    task: str


def save_model_file(
    path: Path,
    model: torch.nn.Module,
    *,
    model_config: ModelConfig,
    preprocess: PreprocessConfig,
    in_chans: int,
    num_classes: int,
    input_size: int,
    class_names: tuple[str, ...],
    task: str,
) -> None:
    """Write the model's weights with its build and preprocessing recipe (the caller stores it atomically)."""
    torch.save(
        {
            "format": FORMAT,
            "model_config": model_config.model_dump(mode="json"),
            "preprocess": preprocess.model_dump(mode="json"),
            "in_chans": in_chans,
            "num_classes": num_classes,
            "input_size": input_size,
            "class_names": list(class_names),
            "task": task,
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        },
        path,
    )


def load_model_file(path: Path, map_location: str | torch.device = "cpu") -> ModelBundle:
    """Rebuild a model saved by :func:`save_model_file` through ``create_model``; eval mode."""
    try:
        payload: dict[str, Any] = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise CheckpointError(f"{path} is not a readable model file: {exc.__class__.__name__}: {exc}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a medopt model file (format {FORMAT} expected)")
    model_config = ModelConfig.model_validate(payload["model_config"]).model_copy(update={"pretrained": False})
    model = create_model(
        model_config,
        in_chans=payload["in_chans"],
        num_classes=payload["num_classes"],
        input_size=payload["input_size"],
    )
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return ModelBundle(
        model=model,
        model_config=model_config,
        preprocess=PreprocessConfig.model_validate(payload["preprocess"]),
        in_chans=payload["in_chans"],
        num_classes=payload["num_classes"],
        input_size=payload["input_size"],
        class_names=tuple(payload["class_names"]),
        task=payload["task"],
    )
