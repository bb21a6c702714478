"""Transfer modes: exact trainable-parameter counts, block layouts per family, frozen BatchNorm statistics."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from medopt.config import ModelConfig
from medopt.models import (
    ModelError,
    backbone_blocks,
    create_model,
    freeze_frozen_batchnorm,
    set_transfer_mode,
    trainable_parameter_count,
)
from medopt.models.zoo import TINY_MODELS


def _numel(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _build(name: str, transfer: str = "finetune", n: int = 1, **kw: object) -> nn.Module:
    torch.manual_seed(0)
    return create_model(ModelConfig(name=name, transfer=transfer, last_n_blocks=n), **kw)


@pytest.mark.parametrize("name", [*TINY_MODELS, "resnet18"])
def test_finetune_trains_everything_and_feature_extract_only_the_head(name: str) -> None:
    model = _build(name, num_classes=5)
    assert trainable_parameter_count(model) == _numel(model)
    set_transfer_mode(model, "feature_extract")
    assert trainable_parameter_count(model) == _numel(model.get_classifier())
    assert _numel(model.get_classifier()) == model.num_features * 5 + 5


@pytest.mark.parametrize("name", [*TINY_MODELS, "resnet18"])
def test_last_n_grows_with_n(name: str) -> None:
    model = _build(name)
    head = _numel(model.get_classifier())
    counts = []
    for n in range(1, len(backbone_blocks(model)) + 1):
        set_transfer_mode(model, "last_n", n)
        counts.append(trainable_parameter_count(model))
    assert head < counts[0]
    assert all(a < b for a, b in zip(counts, counts[1:]))
    assert counts[-1] < _numel(model)  # the stem stays frozen


def test_tiny_cnn_counts_match_hand_computation() -> None:
    # stem: conv 3->8 (216) + bn (16); blocks: 8->16 (1152+32), 16->32 (4608+64), 32->64 (18432+128); head 64*2+2.
    model = _build("tiny_cnn")
    assert _numel(model) == 232 + 1184 + 4672 + 18560 + 130
    set_transfer_mode(model, "last_n", 1)
    assert trainable_parameter_count(model) == 18560 + 130
    set_transfer_mode(model, "last_n", 3)
    assert trainable_parameter_count(model) == 1184 + 4672 + 18560 + 130


def test_last_n_also_trains_the_layers_between_last_block_and_head() -> None:
    model = _build("efficientnet_b0", "last_n", 1)
    depth = {"blocks": 2}  # name stages as blocks.<i>, other modules by their top-level name
    trainable = {".".join(n.split(".")[: depth.get(n.split(".")[0], 1)])
                 for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"blocks.6", "conv_head", "bn2", "classifier"}
    vit = _build("tiny_vit", "last_n", 1)
    expected = _numel(vit.blocks[-1]) + _numel(vit.norm) + _numel(vit.head)
    assert trainable_parameter_count(vit) == expected


def test_modes_from_config_are_applied() -> None:
    model = _build("tiny_resnet", "feature_extract")
    assert trainable_parameter_count(model) == _numel(model.fc)
    model = _build("tiny_resnet", "last_n", 2)
    assert trainable_parameter_count(model) == _numel(model.layer3) + _numel(model.layer4) + _numel(model.fc)


def test_bad_modes_raise() -> None:
    model = _build("tiny_resnet")
    with pytest.raises(ModelError, match="model.last_n_blocks=5, but ResNet has 4 blocks"):
        set_transfer_mode(model, "last_n", 5)
    with pytest.raises(ModelError, match="model.transfer 'partial' is not one of"):
        set_transfer_mode(model, "partial")
    with pytest.raises(ModelError, match="last_n_blocks=4, but TinyCNN has 3 blocks"):
        _build("tiny_cnn", "last_n", 4)


def _bn_stats(model: nn.Module) -> list[torch.Tensor]:
    return [t.clone() for m in model.modules() if isinstance(m, nn.BatchNorm2d)
            for t in (m.running_mean, m.running_var)]


def _train_step(model: nn.Module, freeze: bool) -> None:
    model.train()
    if freeze:
        freeze_frozen_batchnorm(model)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    x, y = torch.randn(8, 3, 16, 16) * 3 + 1, torch.randint(0, 2, (8,))
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()


@pytest.mark.parametrize("freeze", [True, False])
def test_frozen_batchnorm_statistics_stay_fixed_only_when_frozen(freeze: bool) -> None:
    model = _build("tiny_resnet", "feature_extract")
    before, head_before = _bn_stats(model), model.fc.weight.detach().clone()
    _train_step(model, freeze)
    unchanged = all(torch.equal(a, b) for a, b in zip(before, _bn_stats(model), strict=True))
    assert unchanged is freeze
    assert not torch.equal(head_before, model.fc.weight)


def test_freeze_keeps_trainable_blocks_in_train_mode() -> None:
    model = _build("tiny_resnet", "last_n", 1)
    model.train()
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    layer4 = [m for m in model.layer4.modules() if isinstance(m, nn.BatchNorm2d)]
    assert freeze_frozen_batchnorm(model) == len(bns) - len(layer4)
    assert all(m.training for m in layer4)
    assert not any(m.training for m in model.layer1.modules() if isinstance(m, nn.BatchNorm2d))


def test_tiny_block_layouts() -> None:
    assert [len(backbone_blocks(_build(n))) for n in TINY_MODELS] == [3, 4, 2]
    with pytest.raises(ModelError, match="no known block layout"):
        backbone_blocks(nn.Sequential(nn.Linear(2, 2)))


@pytest.mark.slow
@pytest.mark.parametrize(("name", "blocks"), [("resnet18", 4), ("resnet50", 4), ("vgg16", 5), ("densenet121", 4),
                                              ("efficientnet_b0", 7), ("efficientnet_lite0", 7),
                                              ("mobilenetv2_100", 7), ("convnext_tiny", 4), ("swin_tiny", 4),
                                              ("maxvit_tiny", 4), ("vit_small", 12)])
def test_big_model_block_layouts(name: str, blocks: int) -> None:
    with torch.device("meta"):  # structure and parameter counts only: no memory, no weight initialisation
        model = _build(name, input_size=32)
    assert len(backbone_blocks(model)) == blocks
    set_transfer_mode(model, "last_n", 1)
    last = trainable_parameter_count(model)
    set_transfer_mode(model, "feature_extract")
    head = trainable_parameter_count(model)
    assert head == _numel(model.get_classifier()) < last < _numel(model)
