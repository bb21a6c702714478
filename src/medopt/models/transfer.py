"""Transfer-learning modes: which parameters train, and keeping frozen BatchNorm statistics frozen.

"Blocks" are found from the model's structure, per family:
ResNet ``layer1..layer4``; VGG the conv stages between max-pools; DenseNet each dense block with its transition;
ConvNeXt/MaxViT ``stages``; Swin ``layers``; EfficientNet/MobileNet stages ``blocks[i]``; ViT ``blocks[i]``;
TinyCNN ``blocks[i]``. In ``last_n`` mode the parameters registered after the last block and before the head
(final norms, EfficientNet's ``conv_head``, VGG's ``pre_logits``) train too, because they sit between the
trainable blocks and the head.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from medopt.models.model_spec import ModelError

logger = logging.getLogger(__name__)

TRANSFER_MODES = ("finetune", "feature_extract", "last_n")


def _vgg_stages(features: nn.Sequential) -> list[nn.Module]:
    stages: list[nn.Module] = []
    current: list[nn.Module] = []
    for layer in features:
        current.append(layer)
        if isinstance(layer, nn.MaxPool2d):
            stages.append(nn.Sequential(*current))
            current = []
    if current:
        stages.append(nn.Sequential(*current))
    return stages


def _densenet_blocks(features: nn.Module) -> list[nn.Module]:
    children = dict(features.named_children())
    blocks = []
    for name in (n for n in children if n.startswith("denseblock")):
        transition = children.get(name.replace("denseblock", "transition"))
        blocks.append(nn.Sequential(children[name], *([transition] if transition is not None else [])))
    return blocks


def backbone_blocks(model: nn.Module) -> list[nn.Module]:
    """The ordered backbone blocks that ``last_n`` counts from the end (see the module docstring).

    Raises:
        ModelError: the model has none of the known block layouts.
    """
    if all(hasattr(model, f"layer{i}") for i in range(1, 5)):
        return [getattr(model, f"layer{i}") for i in range(1, 5)]
    features = getattr(model, "features", None)
    if isinstance(features, nn.Sequential):
        dense = _densenet_blocks(features)
        return dense if dense else _vgg_stages(features)
    for attr in ("stages", "layers", "blocks"):
        seq = getattr(model, attr, None)
        if isinstance(seq, (nn.Sequential, nn.ModuleList)) and len(seq) > 0:
            return list(seq)
    raise ModelError(f"{type(model).__name__}: no known block layout for transfer mode 'last_n'")


def _set_trainable(params: Iterable[nn.Parameter], flag: bool) -> None:
    for p in params:
        p.requires_grad_(flag)


def _neck_parameters(model: nn.Module, last_block: nn.Module) -> list[nn.Parameter]:
    """Parameters registered after the last block's (final norms, conv_head, pre-logits)."""
    block_ids = {id(p) for p in last_block.parameters()}
    params = list(model.parameters())
    last = max(i for i, p in enumerate(params) if id(p) in block_ids)
    return params[last + 1 :]


def set_transfer_mode(model: nn.Module, mode: str, last_n_blocks: int = 1) -> None:
    """Set ``requires_grad`` in place: "finetune" (all), "feature_extract" (head only), "last_n" (head + N blocks).

    Call ``freeze_frozen_batchnorm(model)`` after every ``model.train()`` so frozen BatchNorm layers keep their
    ImageNet statistics.

    Raises:
        ModelError: unknown mode, or ``last_n_blocks`` outside 1..number of blocks.
    """
    if mode not in TRANSFER_MODES:
        raise ModelError(f"model.transfer '{mode}' is not one of {', '.join(TRANSFER_MODES)}")
    if mode == "finetune":
        _set_trainable(model.parameters(), True)
        return
    head = list(model.get_classifier().parameters())
    if not head:
        raise ModelError(f"model.transfer '{mode}': {type(model).__name__} has no classifier parameters to train")
    _set_trainable(model.parameters(), False)
    if mode == "last_n":
        blocks = backbone_blocks(model)
        if not 1 <= last_n_blocks <= len(blocks):
            raise ModelError(
                f"model.last_n_blocks={last_n_blocks}, but {type(model).__name__} has {len(blocks)} blocks"
            )
        for block in blocks[-last_n_blocks:]:
            _set_trainable(block.parameters(), True)
        _set_trainable(_neck_parameters(model, blocks[-1]), True)
    _set_trainable(head, True)
    logger.info("transfer mode %s: %d trainable parameters", mode, trainable_parameter_count(model))


def freeze_frozen_batchnorm(model: nn.Module) -> int:
    """Put every BatchNorm whose affine parameters are all frozen into eval mode; returns how many.

    ``model.train()`` switches all BatchNorm layers back to batch statistics and updates their running stats,
    which silently shifts a frozen backbone. Call this right after each ``model.train()``. BatchNorm layers
    without affine parameters are left as they are.
    """
    count = 0
    for module in model.modules():
        params = list(module.parameters(recurse=False))
        if isinstance(module, _BatchNorm) and params and not any(p.requires_grad for p in params):
            module.eval()
            count += 1
    return count


def trainable_parameter_count(model: nn.Module) -> int:
    """Number of scalar parameters with ``requires_grad`` (what the optimizer will update)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
