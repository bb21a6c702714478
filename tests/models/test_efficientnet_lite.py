"""EfficientNet-Lite0 ImageNet weights from the installed packages, converted to timm and checked on a cat photo."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from skimage import data, transform
from torch import nn

from medopt.config import ModelConfig
from medopt.models import MODELS, ModelError, create_model, load_pretrained_weights
from medopt.models import efficientnet_lite
from medopt.models.model_spec import ModelSpec

IMAGENET_CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def _chelsea(spec: ModelSpec) -> torch.Tensor:
    """skimage's cat photo, center-cropped, resized to the spec's input size and normalized with its mean/std."""
    img = data.chelsea()
    h, w, _ = img.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    size = spec.default_input_size
    x = transform.resize(img[top : top + side, left : left + side], (size, size), anti_aliasing=True)
    x = (x - np.asarray(spec.mean)) / np.asarray(spec.std)
    return torch.from_numpy(x.transpose(2, 0, 1)[None].astype(np.float32))


@pytest.fixture(scope="module")
def imagenet_lite0() -> nn.Module:
    return create_model(ModelConfig(name="efficientnet_lite0", pretrained=True), num_classes=1000).eval()


def test_chelsea_is_a_cat_in_the_top1(imagenet_lite0: nn.Module) -> None:
    with torch.no_grad():
        probs = imagenet_lite0(_chelsea(MODELS.get("efficientnet_lite0"))).softmax(-1)[0]
    top5 = probs.topk(5).indices.tolist()
    assert top5[0] in IMAGENET_CATS
    assert sum(i in IMAGENET_CATS for i in top5) >= 3
    assert probs[list(IMAGENET_CATS)].sum() > 0.8


def test_converted_model_matches_the_package_reference(imagenet_lite0: nn.Module) -> None:
    from efficientnet_lite_pytorch import EfficientNet

    reference = EfficientNet.from_name("efficientnet-lite0")
    reference.load_state_dict(torch.load(efficientnet_lite.package_weights_file(), weights_only=True))
    x = _chelsea(MODELS.get("efficientnet_lite0"))
    with torch.no_grad():
        assert torch.allclose(imagenet_lite0(x), reference.eval()(x), atol=1e-4)


def test_every_timm_tensor_gets_exactly_one_source_tensor() -> None:
    source = torch.load(efficientnet_lite.package_weights_file(), weights_only=True)
    converted = efficientnet_lite.convert_state_dict(source)
    timm_keys = list(create_model(ModelConfig(name="efficientnet_lite0"), num_classes=1000).state_dict())
    assert list(converted) == timm_keys
    assert converted["conv_stem.weight"] is source["_conv_stem.weight"]
    assert converted["blocks.1.0.conv_pwl.weight"] is source["_blocks.1._project_conv.weight"]
    assert converted["classifier.bias"] is source["_fc.bias"]


def test_conversion_fails_loudly_on_a_reordered_or_short_source() -> None:
    source = torch.load(efficientnet_lite.package_weights_file(), weights_only=True)
    keys = list(source)
    a, b = keys.index("_blocks.1._expand_conv.weight"), keys.index("_blocks.1._bn0.weight")
    keys[a], keys[b] = keys[b], keys[a]  # a conv weight and a BN weight trade places
    with pytest.raises(ModelError, match="does not fit timm"):
        efficientnet_lite.convert_state_dict(OrderedDict((k, source[k]) for k in keys))
    with pytest.raises(ModelError, match="has 295 tensors, timm tf_efficientnet_lite0 has 296"):
        efficientnet_lite.convert_state_dict(OrderedDict(list(source.items())[:-1]))


def test_pretrained_gray_two_class_model_adapts_stem_and_skips_head() -> None:
    torch.manual_seed(0)
    model = create_model(ModelConfig(name="efficientnet_lite0"), in_chans=1)
    report = load_pretrained_weights(model, MODELS.get("efficientnet_lite0"), None)
    source = efficientnet_lite.package_state_dict()
    assert report.adapted == ("conv_stem.weight",)
    assert report.skipped == ("classifier.weight", "classifier.bias")
    assert torch.allclose(model.conv_stem.weight, source["conv_stem.weight"].sum(dim=1, keepdim=True))
    with torch.no_grad():
        assert model.eval()(torch.randn(2, 1, 64, 64)).shape == (2, 2)
