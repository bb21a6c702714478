from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from compress_helpers import SIZE, tiny

from medopt.compress.errors import CompressError, OnnxAgreementError
from medopt.compress.export import check_onnx_agreement, export_onnx, ort_session


@pytest.mark.parametrize("name", ["tiny_cnn", "tiny_resnet"])
def test_export_agrees_with_pytorch_and_batch_is_dynamic(tmp_path, name: str) -> None:
    model = tiny(name)
    path = export_onnx(model, tmp_path / "m.onnx", input_shape=(1, SIZE, SIZE), opset=17)
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["input"] and [o.name for o in graph.output] == ["logits"]
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    session = ort_session(path, threads=1)
    for batch in (1, 5):
        x = torch.randn(batch, 1, SIZE, SIZE)
        assert session.run(None, {"input": x.numpy()})[0].shape == (batch, 2)
        assert check_onnx_agreement(model, path, x) < 1e-4


def test_disagreement_raises(tmp_path) -> None:
    model = tiny("tiny_cnn")
    path = export_onnx(model, tmp_path / "m.onnx", input_shape=(1, SIZE, SIZE), opset=17)
    with torch.no_grad():
        model.get_classifier().bias.add_(1.0)
    with pytest.raises(OnnxAgreementError, match="differ"):
        check_onnx_agreement(model, path, torch.randn(2, 1, SIZE, SIZE))


def test_bad_input_shape_raises(tmp_path) -> None:
    with pytest.raises(CompressError, match="input_shape"):
        export_onnx(tiny("tiny_cnn"), tmp_path / "m.onnx", input_shape=(1, SIZE), opset=17)  # type: ignore[arg-type]


def test_export_restores_training_mode(tmp_path) -> None:
    model = tiny("tiny_cnn").train()
    export_onnx(model, tmp_path / "m.onnx", input_shape=(1, SIZE, SIZE), opset=13)
    assert model.training
    assert np.isfinite(check_onnx_agreement(model, tmp_path / "m.onnx", torch.randn(3, 1, SIZE, SIZE)))
