"""Both halves of a split export to ONNX, agree with PyTorch, and store as servable artifacts with a manifest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from medopt.compress.export import INPUT_NAME, OUTPUT_NAME, check_onnx_agreement, ort_session
from medopt.config import ModelConfig
from medopt.models import create_model
from medopt.serve.split import (
    decode_intermediate,
    encode_intermediate,
    export_split_onnx,
    save_split_artifacts,
    split_model,
)
from medopt.store import LocalStore

torch.set_num_threads(1)
SIZE = 16


def _split(name: str, at: str, codec: str = "none"):
    torch.manual_seed(0)
    model = create_model(ModelConfig(name=name), in_chans=3, num_classes=3, input_size=SIZE).eval()
    return model, split_model(model, at, input_shape=(3, SIZE, SIZE), codec=codec)


@pytest.mark.parametrize("name, at", [("tiny_cnn", "blocks.1"), ("tiny_resnet", "layer2")])
def test_onnx_halves_agree_with_pytorch_and_compose(name: str, at: str, tmp_path: Path) -> None:
    model, split = _split(name, at)
    files = export_split_onnx(split, tmp_path, opset=17)
    x = torch.rand(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        feats = split.edge(x)
        ref = model(x).numpy()
    assert check_onnx_agreement(split.edge, files.edge, x, tolerance=1e-4) < 1e-4
    assert check_onnx_agreement(split.cloud, files.cloud, feats, tolerance=1e-4) < 1e-4
    mid = ort_session(files.edge, threads=1).run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0]
    assert mid.shape == (3, *split.intermediate_shape)
    logits = ort_session(files.cloud, threads=1).run([OUTPUT_NAME], {INPUT_NAME: mid})[0]
    assert np.max(np.abs(logits - ref)) < 1e-4
    assert np.array_equal(logits.argmax(1), ref.argmax(1))


def test_cloud_onnx_serves_a_decoded_int8_tensor(tmp_path: Path) -> None:
    model, split = _split("tiny_cnn", "blocks.0", codec="int8")
    files = export_split_onnx(split, tmp_path)
    x = torch.rand(4, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    mid = ort_session(files.edge, threads=1).run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0]
    received = decode_intermediate(encode_intermediate(mid, "int8"))
    logits = ort_session(files.cloud, threads=1).run([OUTPUT_NAME], {INPUT_NAME: received})[0]
    with torch.no_grad():
        ref = model(x).numpy()
    assert np.max(np.abs(logits - ref)) <= 2e-2 * max(1.0, float(np.abs(ref).max()))
    assert np.array_equal(logits.argmax(1), ref.argmax(1))


def test_split_artifacts_carry_the_intermediate_contract(tmp_path: Path) -> None:
    _, split = _split("tiny_cnn", "blocks.0", codec="int8")
    store = LocalStore(tmp_path / "store")
    edge, cloud = save_split_artifacts(split, store, "runs/r1/split", parents=("runs/r1/train/model.pt",))
    assert (edge.key, cloud.key) == ("runs/r1/split/edge.onnx", "runs/r1/split/cloud.onnx")
    assert cloud.kind == edge.kind == "model/onnx"
    assert cloud.parents == ("runs/r1/train/model.pt", edge.key)
    contract = cloud.meta["serve"]["input"]
    assert contract == {"name": INPUT_NAME, "shape": [16, 8, 8], "dtype": "float32", "codec": "int8",
                        "wire_dtype": "int8", "wire_bytes": 16 * 8 * 8 + 8, "int8_header": "<fi scale,zero_point"}
    assert cloud.meta["split"]["role"] == "cloud" and cloud.meta["split"]["split_at"] == "blocks.0"
    assert cloud.meta["split"]["bytes_per_image"] == {"raw_image": 768, "preprocessed": 3072, "intermediate": 1032}
    session = ort_session(store.get_file(cloud.key, tmp_path / "cloud.onnx"), threads=1)
    assert list(session.get_inputs()[0].shape[1:]) == contract["shape"]
