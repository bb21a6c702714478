"""``create_model``: the one place medopt builds networks (timm with ``pretrained=False``, plus local weights)."""

from __future__ import annotations

import logging

import timm
from torch import nn

from medopt.config import ModelConfig
from medopt.models import zoo  # noqa: F401 - registers the models create_model looks up
from medopt.models.model_spec import MODELS, ModelError, ModelSpec
from medopt.models.transfer import set_transfer_mode, trainable_parameter_count
from medopt.models.pretrained import SmallStemConv, load_pretrained_weights

logger = logging.getLogger(__name__)

DEFAULT_IN_CHANS = 3
DEFAULT_NUM_CLASSES = 2


def check_input_size(spec: ModelSpec, size: int) -> None:
    """Fail early, naming the constraint, when ``size`` is not a side the architecture accepts."""
    if size < 1 or size % spec.input_multiple:
        raise ModelError(
            f"model '{spec.name}' ({spec.family}) needs an input side that is a positive multiple of "
            f"{spec.input_multiple} (data.preprocess.image_size / crop_size), got {size}"
        )


def apply_small_stem(model: nn.Module, spec: ModelSpec) -> None:
    """Swap a ResNet's 7x7/2 conv + max-pool for one 3x3/1 conv (the MedMNIST recipe for 28x28 inputs).

    Total stride drops from 32 to 8, so small images keep a usable final feature map.
    """
    conv = getattr(model, "conv1", None)
    if spec.family != "resnet" or not isinstance(conv, nn.Conv2d) or not hasattr(model, "maxpool"):
        raise ModelError(f"model.stem='small' applies to ResNet models only; '{spec.name}' is {spec.family}")
    stem = SmallStemConv(conv.in_channels, conv.out_channels, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(stem.weight, mode="fan_out", nonlinearity="relu")
    model.conv1 = stem
    model.maxpool = nn.Identity()


def _build(spec: ModelSpec, in_chans: int, num_classes: int, drop_rate: float, size: int) -> nn.Module:
    kwargs: dict[str, object] = {"in_chans": in_chans, "num_classes": num_classes, "drop_rate": drop_rate}
    if spec.fixed_input_size:
        kwargs["img_size"] = size
    if spec.builder is not None:
        return spec.builder(**kwargs)
    return timm.create_model(spec.timm_name, pretrained=False, **kwargs)


def _resolve(cfg_value: int | None, keyword: int | None, default: int, field: str) -> int:
    value = cfg_value if cfg_value is not None else keyword if keyword is not None else default
    if value < 1:
        raise ModelError(f"model.{field} must be >= 1, got {value}")
    return value


def create_model(
    cfg: ModelConfig,
    *,
    in_chans: int | None = None,
    num_classes: int | None = None,
    input_size: int | None = None,
) -> nn.Module:
    """Build ``cfg.name`` with its stem, drop rate, local pretrained weights and transfer mode applied.

    Config values win; the keywords (usually the data's channel and class counts and the preprocessed image side)
    fill what the config leaves unset; then 3 channels, 2 classes and the spec's default input size.
    Weights load only when ``cfg.pretrained`` is true (from ``cfg.weights_path`` or the spec's package source), so
    a saved model file can rebuild its architecture with ``pretrained=False`` and load its own state dict.

    Raises:
        UnknownNameError: ``cfg.name`` is not registered (the message lists valid names).
        ModelError: invalid size, stem or transfer settings, or missing/incompatible weights.
    """
    spec = MODELS.get(cfg.name)
    chans = _resolve(cfg.in_chans, in_chans, DEFAULT_IN_CHANS, "in_chans")
    classes = _resolve(cfg.num_classes, num_classes, DEFAULT_NUM_CLASSES, "num_classes")
    size = input_size if input_size is not None else spec.default_input_size
    check_input_size(spec, size)
    model = _build(spec, chans, classes, cfg.drop_rate, size)
    if cfg.stem == "small":
        apply_small_stem(model, spec)
    if cfg.pretrained:
        load_pretrained_weights(model, spec, cfg.weights_path)
    elif cfg.weights_path is not None:
        logger.warning("model.weights_path %s ignored: model.pretrained is false", cfg.weights_path)
    set_transfer_mode(model, cfg.transfer, cfg.last_n_blocks)
    logger.info(
        "built %s: in_chans=%d classes=%d size=%d, %d/%d trainable parameters",
        spec.name,
        chans,
        classes,
        size,
        trainable_parameter_count(model),
        sum(p.numel() for p in model.parameters()),
    )
    return model
