"""A tiny stored ONNX model (tiny_cnn, 1 channel, 16 px) for real replica runs."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pytest
import torch

from medopt.config import ExperimentConfig, ModelConfig, PreprocessConfig
from medopt.models import create_model
from medopt.models.geometry import ModelGeometry
from medopt.models.model_file import save_model_file
from medopt.store import LocalStore

ONNX_KEY = "tiny/compress/fp32/model.onnx"
INPUT_SHAPE = [1, 1, 16, 16]


class TinyModel(NamedTuple):
    """Where the stored model is: the store root, its ONNX key, the request tensor's shape."""

    store: Path
    key: str
    input_shape: list[int]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    from medopt.compress.export import export_onnx

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("scaling-store")
    pre = PreprocessConfig(image_size=16)
    cfg = ExperimentConfig.model_validate({"data": {"preprocess": pre.model_dump()}}).model_dump(mode="json")
    model = create_model(ModelConfig(name="tiny_cnn"), in_chans=1, num_classes=2, input_size=16).eval()
    save_model_file(root / "model.pt", model, model_config=ModelConfig(name="tiny_cnn"), preprocess=pre,
                    geometry=ModelGeometry.for_preprocess(pre, in_chans=1, class_names=("a", "b"), task="binary"))
    onnx = export_onnx(model, root / "model.onnx", input_shape=(1, 16, 16), opset=17)
    store = LocalStore(root / "store")
    store.put_file("tiny/train/model.pt", root / "model.pt", kind="model/pytorch", config=cfg)
    store.put_file(ONNX_KEY, onnx, kind="model/onnx", config=cfg, parents=["tiny/train/model.pt"])
    return TinyModel(root / "store", ONNX_KEY, list(INPUT_SHAPE))
