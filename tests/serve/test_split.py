"""Edge/cloud split: the composition is the whole model, codecs stay within tolerance, bytes add up."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medopt.config import ModelConfig, SyntheticConfig
from medopt.data.synthetic import synthetic_images
from medopt.models import MODELS, create_model
from medopt.serve.split import (
    INT8_HEADER,
    SplitError,
    decode_intermediate,
    encode_intermediate,
    pack_sample,
    split_model,
    split_points,
    unpack_sample,
    wire_bytes,
)

torch.set_num_threads(1)

SIZE = 16
FAST = {"tiny_cnn", "tiny_resnet", "resnet18", "efficientnet_b0", "efficientnet_lite0", "mobilenetv2_100"}
UNSPLITTABLE_FAMILIES = {"vit", "swin", "maxvit"}
# Tolerance of the compressed links, relative to max(1, max |logit|) of the whole model.
FP16_TOL, INT8_TOL = 1e-3, 2e-2


def _model(name: str, classes: int = 3, size: int = SIZE) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(ModelConfig(name=name), in_chans=3, num_classes=classes, input_size=size).eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    imgs, _ = synthetic_images(SyntheticConfig(num_samples=48, image_size=SIZE, channels=3, num_classes=3), 0)
    return torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255.0


def _splittable() -> list:
    out = []
    for name in MODELS.names():
        if MODELS.get(name).family in UNSPLITTABLE_FAMILIES:
            continue
        marks = () if name in FAST else (pytest.mark.slow,)
        out.append(pytest.param(name, marks=marks))
    return out


@pytest.mark.parametrize("name", _splittable())
def test_composition_equals_whole_model_at_every_split_point(name: str, images: torch.Tensor) -> None:
    size = SIZE if name in FAST else 64  # ConvNeXt/VGG/DenseNet downsample 32x: 16 px would vanish
    model = _model(name, size=size)
    x = torch.nn.functional.interpolate(images[:4], size=(size, size), mode="bilinear") if size != SIZE else images[:4]
    points = split_points(model)
    if name not in FAST:  # big models: the first, last and two points between (each composition is a full forward)
        points = [points[i] for i in sorted({round(k * (len(points) - 1) / 3) for k in range(4)})]
    with torch.no_grad():
        ref = model(x)
        for at in points:
            split = split_model(model, at, input_shape=(3, size, size))
            out = split(x)
            assert (out - ref).abs().max().item() < 1e-5, at
            assert torch.equal(out.argmax(1), ref.argmax(1)), at
            assert tuple(split.edge(x).shape[1:]) == split.intermediate_shape


@pytest.mark.parametrize("name, at", [("tiny_cnn", "blocks.0"), ("tiny_resnet", "layer2"),
                                      ("mobilenetv2_100", "blocks.3"), ("resnet18", "layer1")])
@pytest.mark.parametrize("codec, tol", [("fp16", FP16_TOL), ("int8", INT8_TOL)])
def test_compressed_link_keeps_predictions(name: str, at: str, codec: str, tol: float, images: torch.Tensor) -> None:
    model = _model(name)
    with torch.no_grad():
        ref = model(images)
        out = split_model(model, at, input_shape=(3, SIZE, SIZE), codec=codec)(images)
    assert (out - ref).abs().max().item() <= tol * max(1.0, ref.abs().max().item())
    assert torch.equal(out.argmax(1), ref.argmax(1))


def test_split_leaves_the_original_model_untouched() -> None:
    model = _model("tiny_cnn")
    split = split_model(model, "blocks.1", input_shape=(3, SIZE, SIZE))
    with torch.no_grad():
        split.edge[0][0].weight.zero_()
    assert model.stem[0].weight.abs().sum().item() > 0


def test_bad_split_name_lists_valid_names() -> None:
    model = _model("tiny_resnet")
    with pytest.raises(SplitError, match="unknown split point 'layer9'.*layer1, layer2, layer3, layer4"):
        split_model(model, "layer9", input_shape=(3, SIZE, SIZE))


def test_unsupported_architecture_and_codec_are_refused() -> None:
    vit = create_model(ModelConfig(name="tiny_vit"), in_chans=3, num_classes=2, input_size=SIZE)
    with pytest.raises(SplitError, match="cannot split a VisionTransformer: supported families are resnet"):
        split_points(vit)
    with pytest.raises(SplitError, match="unknown intermediate codec 'bf16'; valid: none, fp16, int8"):
        split_model(_model("tiny_cnn"), "stem", input_shape=(3, SIZE, SIZE), codec="bf16")


def test_int8_codec_matches_hand_computation() -> None:
    x = np.array([[-1.0, 0.0, 1.0, 3.0]], dtype=np.float32)
    enc = encode_intermediate(x, "int8")
    scale = 4.0 / 255.0
    assert enc.scale[0] == pytest.approx(scale)
    assert enc.zero_point[0] == -64  # rint(-128 + 1 / scale) = rint(-64.25)
    assert enc.data.tolist() == [[-128, -64, -64 + round(1 / scale), 127]]
    dec = decode_intermediate(enc)
    assert dec[0, 1] == 0.0  # zero is exact
    assert np.max(np.abs(dec - x)) <= scale / 2 + 1e-7


def test_int8_codec_per_sample_and_constant_tensors() -> None:
    rng = np.random.default_rng(0)
    x = np.stack([rng.normal(0, 1, (4, 3, 3)), rng.normal(0, 100, (4, 3, 3)), np.zeros((4, 3, 3))]).astype(np.float32)
    enc = encode_intermediate(x, "int8")
    dec = decode_intermediate(enc)
    for i in range(3):
        assert np.max(np.abs(dec[i] - x[i])) <= enc.scale[i] / 2 + 1e-5
    assert enc.scale[2] == 1.0 and np.all(dec[2] == 0)
    assert enc.scale[1] > 50 * enc.scale[0]


def test_codec_refuses_non_finite_and_unbatched_tensors() -> None:
    with pytest.raises(SplitError, match="NaN or inf"):
        encode_intermediate(np.array([[1.0, np.nan]]), "fp16")
    with pytest.raises(SplitError, match="non-empty batch"):
        encode_intermediate(np.ones(3), "int8")


@pytest.mark.parametrize("codec", ["none", "fp16", "int8"])
def test_wire_roundtrip_and_bytes_accounting(codec: str, images: torch.Tensor) -> None:
    split = split_model(_model("tiny_cnn"), "blocks.0", input_shape=(3, SIZE, SIZE), codec=codec)
    assert split.intermediate_shape == (16, SIZE // 2, SIZE // 2)
    values = 16 * 8 * 8
    expected = {"none": values * 4, "fp16": values * 2, "int8": values + INT8_HEADER.size}[codec]
    tb = split.transfer_bytes()
    assert (tb.raw_image, tb.preprocessed, tb.intermediate) == (3 * SIZE * SIZE, 3 * SIZE * SIZE * 4, expected)
    assert tb.vs_raw_image == pytest.approx(expected / (3 * SIZE * SIZE))
    assert split.transfer_bytes(raw_channels=1).raw_image == SIZE * SIZE
    with torch.no_grad():
        feats = split.edge(images[:2]).numpy()
    enc = encode_intermediate(feats, codec)
    payload = pack_sample(enc, 1)
    assert len(payload) == expected == enc.sample_nbytes()
    back = unpack_sample(payload, split.intermediate_shape, codec)
    np.testing.assert_array_equal(decode_intermediate(back)[0], decode_intermediate(enc)[1])


def test_truncated_or_corrupt_payload_is_refused() -> None:
    shape = (2, 2, 2)
    payload = pack_sample(encode_intermediate(np.ones((1, *shape), np.float32), "int8"))
    with pytest.raises(SplitError, match=r"int8 intermediate of shape \(2, 2, 2\) needs 16 bytes, got 15"):
        unpack_sample(payload[:-1], shape, "int8")
    bad_header = INT8_HEADER.pack(-1.0, 0) + payload[INT8_HEADER.size:]
    with pytest.raises(SplitError, match="header is invalid"):
        unpack_sample(bad_header, shape, "int8")
    assert wire_bytes(shape, "fp16") == 16
