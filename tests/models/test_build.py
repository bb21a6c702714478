"""create_model over the whole registry: shapes, channel/class handling, size rules, stem and drop rate."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from medopt.config import ModelConfig
from medopt.models import MODELS, ModelError, create_model
from medopt.models.zoo import TINY_MODELS

BIG_MODELS = sorted(set(MODELS.names()) - set(TINY_MODELS))
BIG_SIZE = 32  # accepted by every family: a multiple of 32 (swin, maxvit) and of 16 (vit)


def _logits(model: nn.Module, in_chans: int, size: int, batch: int = 2) -> torch.Tensor:
    torch.manual_seed(0)
    model.eval()
    with torch.no_grad():
        return model(torch.randn(batch, in_chans, size, size))


@pytest.mark.parametrize("num_classes", [2, 5])
@pytest.mark.parametrize("in_chans", [1, 3])
@pytest.mark.parametrize("name", TINY_MODELS)
def test_tiny_models_give_logits(name: str, in_chans: int, num_classes: int) -> None:
    size = MODELS.get(name).default_input_size
    model = create_model(ModelConfig(name=name), in_chans=in_chans, num_classes=num_classes, input_size=size)
    assert _logits(model, in_chans, size, batch=3).shape == (3, num_classes)


@pytest.mark.slow
@pytest.mark.parametrize(("in_chans", "num_classes"), [(1, 5), (3, 2)])
@pytest.mark.parametrize("name", BIG_MODELS)
def test_big_models_give_logits(name: str, in_chans: int, num_classes: int) -> None:
    torch.manual_seed(0)
    model = create_model(ModelConfig(name=name), in_chans=in_chans, num_classes=num_classes, input_size=BIG_SIZE)
    logits = _logits(model, in_chans, BIG_SIZE)
    assert logits.shape == (2, num_classes)
    assert torch.isfinite(logits).all()


def test_config_values_win_over_keywords_and_defaults_fill_the_rest() -> None:
    model = create_model(ModelConfig(name="tiny_cnn", in_chans=1, num_classes=4), in_chans=3, num_classes=7)
    assert model.stem[0].in_channels == 1 and model.get_classifier().out_features == 4
    model = create_model(ModelConfig(name="tiny_cnn"), in_chans=3, num_classes=7)
    assert model.stem[0].in_channels == 3 and model.get_classifier().out_features == 7
    model = create_model(ModelConfig(name="tiny_cnn"))
    assert model.stem[0].in_channels == 3 and model.get_classifier().out_features == 2


def test_fixed_size_models_are_built_for_the_given_size() -> None:
    model = create_model(ModelConfig(name="tiny_vit"), input_size=16)
    assert model.patch_embed.num_patches == (16 // 4) ** 2
    assert _logits(model, 3, 16).shape == (2, 2)
    default = create_model(ModelConfig(name="tiny_vit"))
    assert default.patch_embed.num_patches == (32 // 4) ** 2


@pytest.mark.parametrize(("name", "size", "multiple"), [("swin_tiny", 100, 32), ("maxvit_tiny", 112, 32),
                                                        ("vit_small", 40, 16), ("tiny_vit", 30, 4),
                                                        ("tiny_cnn", 0, 1)])
def test_bad_input_size_fails_early_with_the_constraint(name: str, size: int, multiple: int) -> None:
    with pytest.raises(ModelError, match=f"'{name}'.*multiple of {multiple}.*got {size}"):
        create_model(ModelConfig(name=name), input_size=size)


def test_keyword_counts_are_validated() -> None:
    with pytest.raises(ModelError, match="model.in_chans must be >= 1, got 0"):
        create_model(ModelConfig(name="tiny_cnn"), in_chans=0)


def test_small_stem_keeps_a_4x4_map_where_imagenet_stem_leaves_1x1_at_28px() -> None:
    # ImageNet stem: stride 32 -> 28/2/2/2/2/2 (ceil) = 1. Small stem: stride 8 -> 28 -> 14 -> 7 -> 4.
    x = torch.randn(2, 1, 28, 28)
    sides = {}
    for stem in ("imagenet", "small"):
        model = create_model(ModelConfig(name="resnet18", stem=stem), in_chans=1).eval()
        with torch.no_grad():
            sides[stem] = tuple(model.forward_features(x).shape[-2:])
    assert sides == {"imagenet": (1, 1), "small": (4, 4)}
    small = create_model(ModelConfig(name="resnet18", stem="small"), in_chans=1)
    assert small.conv1.kernel_size == (3, 3) and small.conv1.stride == (1, 1) and small.conv1.in_channels == 1
    assert isinstance(small.maxpool, nn.Identity)


@pytest.mark.parametrize("name", ["tiny_cnn", "tiny_vit"])
def test_small_stem_is_refused_outside_resnets(name: str) -> None:
    with pytest.raises(ModelError, match="stem='small' applies to ResNet models only"):
        create_model(ModelConfig(name=name, stem="small"))


def test_drop_rate_reaches_the_classifier_dropout() -> None:
    tiny = create_model(ModelConfig(name="tiny_cnn", drop_rate=0.3))
    assert tiny.head_drop.p == pytest.approx(0.3)
    resnet = create_model(ModelConfig(name="tiny_resnet", drop_rate=0.4))
    assert resnet.drop_rate == pytest.approx(0.4)
    vit = create_model(ModelConfig(name="tiny_vit", drop_rate=0.2))
    assert vit.head_drop.p == pytest.approx(0.2)


def test_same_seed_gives_identical_models() -> None:
    torch.manual_seed(3)
    a = create_model(ModelConfig(name="tiny_resnet", stem="small"))
    torch.manual_seed(3)
    b = create_model(ModelConfig(name="tiny_resnet", stem="small"))
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)
