"""The model registry: the names other stages rely on, valid specs, helpful errors for unknown names."""

from __future__ import annotations

import pytest

from medopt.config import ModelConfig
from medopt.models import MODELS, ModelError, ModelSpec, create_model
from medopt.models.model_spec import FAMILIES
from medopt.registry import UnknownNameError

EXPECTED = {
    "resnet18": "resnet",
    "resnet50": "resnet",
    "vgg16": "vgg",
    "densenet121": "densenet",
    "efficientnet_b0": "efficientnet",
    "efficientnet_lite0": "efficientnet",
    "mobilenetv2_100": "mobilenet",
    "convnext_tiny": "convnext",
    "swin_tiny": "swin",
    "maxvit_tiny": "maxvit",
    "vit_small": "vit",
    "tiny_cnn": "tiny",
    "tiny_resnet": "resnet",
    "tiny_vit": "vit",
}


def test_registry_holds_exactly_the_contracted_models() -> None:
    assert set(MODELS.names()) == set(EXPECTED)
    assert {name: MODELS.get(name).family for name in EXPECTED} == EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_specs_are_consistent(name: str) -> None:
    spec = MODELS.get(name)
    assert spec.name == name
    assert spec.family in FAMILIES
    assert (spec.timm_name is None) != (spec.builder is None)
    assert spec.default_input_size % spec.input_multiple == 0
    assert spec.fixed_input_size == (spec.family in {"swin", "maxvit", "vit"})
    assert len(spec.mean) == len(spec.std) == 3


def test_only_efficientnet_lite0_has_a_packaged_weights_source() -> None:
    sources = {name: MODELS.get(name).weights for name in MODELS.names() if MODELS.get(name).weights}
    assert sources == {"efficientnet_lite0": "package:efficientnet_lite0"}
    spec = MODELS.get("efficientnet_lite0")
    assert spec.mean == pytest.approx((127 / 255,) * 3) and spec.std == pytest.approx((128 / 255,) * 3)
    assert spec.default_input_size == 224


def test_unknown_name_lists_close_matches_and_valid_names() -> None:
    with pytest.raises(UnknownNameError) as info:
        create_model(ModelConfig(name="resnet19"))
    message = str(info.value)
    assert "Did you mean resnet18" in message
    for name in EXPECTED:
        assert name in message


def test_spec_rejects_bad_family_and_ambiguous_source() -> None:
    with pytest.raises(ModelError, match="family 'alexnet'"):
        ModelSpec("x", "resnet18", "alexnet", 224)
    with pytest.raises(ModelError, match="exactly one of timm_name and builder"):
        ModelSpec("x", None, "resnet", 224)
    with pytest.raises(ModelError, match="not a multiple of 16"):
        ModelSpec("x", "vit_small_patch16_224", "vit", 100, input_multiple=16)


def test_registering_a_name_twice_raises() -> None:
    with pytest.raises(ValueError, match="already registered"):
        MODELS.add("tiny_cnn", MODELS.get("tiny_cnn"))
