"""One model geometry: derived once from (preprocess, dataset), saved in the model file, read back by every stage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from medopt.config import ModelConfig, PreprocessConfig
from medopt.data.types import ArraySplit, ImageDataset
from medopt.models import ModelError, create_model
from medopt.models.geometry import ModelGeometry, build_model
from medopt.models.model_file import ModelFileError, load_model_file, save_model_file


def _dataset(channels: int = 1) -> ImageDataset:
    rng = np.random.default_rng(0)
    shape = (6, 20, 20) if channels == 1 else (6, 20, 20, channels)

    def split() -> ArraySplit:
        return ArraySplit(rng.integers(0, 255, shape, dtype=np.uint8), np.arange(6) % 3)

    return ImageDataset(split(), split(), split(), class_names=("a", "b", "c"), task="multiclass", source="test")


def test_from_dataset_applies_to_rgb_crop_and_normalisation() -> None:
    pre = PreprocessConfig(image_size=20, crop="center", crop_size=16, to_rgb=True, normalize="meanstd",
                           mean=(0.1, 0.2, 0.3), std=(0.4, 0.5, 0.6))
    g = ModelGeometry.from_dataset(pre, _dataset())
    assert (g.in_chans, g.input_size, g.num_classes, g.class_names, g.task) == (3, 16, 3, ("a", "b", "c"),
                                                                               "multiclass")
    assert (g.mean, g.std, g.input_shape) == ((0.1, 0.2, 0.3), (0.4, 0.5, 0.6), (3, 16, 16))
    unit = ModelGeometry.from_dataset(PreprocessConfig(image_size=20), _dataset())
    assert (unit.in_chans, unit.input_size, unit.mean, unit.std) == (1, 20, None, None)


def test_dict_round_trip_and_bad_values() -> None:
    g = ModelGeometry.from_dataset(PreprocessConfig(image_size=20, normalize="meanstd"), _dataset())
    assert ModelGeometry.from_dict(g.to_dict()) == g
    with pytest.raises(ModelError, match="unreadable model geometry"):
        ModelGeometry.from_dict({"in_chans": 1})
    with pytest.raises(ModelError, match="task must be one of"):
        ModelGeometry.from_dict({**g.to_dict(), "task": "regression"})


def test_model_file_carries_the_geometry(tmp_path: Path) -> None:
    pre = PreprocessConfig(image_size=20, crop="center", crop_size=16)
    g = ModelGeometry.from_dataset(pre, _dataset())
    cfg = ModelConfig(name="tiny_cnn")
    save_model_file(tmp_path / "m.pt", build_model(cfg, g), model_config=cfg, preprocess=pre, geometry=g)
    bundle = load_model_file(tmp_path / "m.pt")
    assert bundle.geometry == g
    assert bundle.model(torch.zeros(2, *g.input_shape)).shape == (2, 3)


def test_model_file_without_geometry_is_read_from_its_old_fields(tmp_path: Path) -> None:
    pre = PreprocessConfig(image_size=16, normalize="meanstd")
    model = create_model(ModelConfig(name="tiny_cnn"), in_chans=1, num_classes=2, input_size=16)
    torch.save({"format": "medopt-model/1", "model_config": ModelConfig(name="tiny_cnn").model_dump(mode="json"),
                "preprocess": pre.model_dump(mode="json"), "in_chans": 1, "num_classes": 2, "input_size": 16,
                "class_names": ["no", "yes"], "task": "binary", "state_dict": model.state_dict()}, tmp_path / "old.pt")
    g = load_model_file(tmp_path / "old.pt").geometry
    assert g == ModelGeometry(in_chans=1, input_size=16, num_classes=2, class_names=("no", "yes"), task="binary",
                              mean=(0.5,), std=(0.5,))


def test_unreadable_model_file_is_a_model_file_error(tmp_path: Path) -> None:
    (tmp_path / "bad.pt").write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match="not a readable model file"):
        load_model_file(tmp_path / "bad.pt")
