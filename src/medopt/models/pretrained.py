"""Pretrained weights from local files or installed packages only; medopt never downloads weights.

Loading is strict except for two documented adaptations: a classifier head whose shape differs (another class
count) keeps its fresh initialisation, and a 3-channel stem conv is folded to the model's ``in_chans`` the way
timm's ``adapt_input_conv`` does. Every other missing, unexpected or mis-shaped tensor raises ``ModelError``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from timm.models._manipulate import adapt_input_conv
from torch import nn

from medopt.models import efficientnet_lite
from medopt.models.model_spec import ModelError, ModelSpec

logger = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".pth", ".pt", ".safetensors")
_WRAPPER_PREFIXES = ("module.", "model.")
_CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model")
PACKAGE_SOURCES: dict[str, Callable[[], dict[str, torch.Tensor]]] = {
    "efficientnet_lite0": efficientnet_lite.package_state_dict,
}


class SmallStemConv(nn.Conv2d):
    """The 3x3 stride-1 stem conv of ``stem='small'``; its type tells the loader to keep it at initialisation."""


@dataclass(frozen=True)
class WeightsReport:
    """What a load did: the source, how many tensors were copied, and which were skipped or adapted."""

    source: str
    loaded: int
    skipped: tuple[str, ...]
    adapted: tuple[str, ...]


def _unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping):
        for key in _CHECKPOINT_KEYS:
            if isinstance(obj.get(key), Mapping):
                return _unwrap(obj[key], path)
        if obj and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
            return dict(obj)
    raise ModelError(f"model.weights_path {path}: not a state dict of named tensors")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a ``.pth``/``.pt``/``.safetensors`` state dict (a checkpoint dict holding one is unwrapped)."""
    p = Path(path)
    if p.suffix not in WEIGHT_SUFFIXES:
        raise ModelError(f"model.weights_path {p}: expected one of {', '.join(WEIGHT_SUFFIXES)}")
    if not p.is_file():
        raise ModelError(f"model.weights_path {p}: file not found")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        return _unwrap(load_file(str(p), device="cpu"), p)
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or unsafe pickles
        raise ModelError(f"model.weights_path {p}: cannot read ({exc.__class__.__name__}: {exc})") from None
    return _unwrap(obj, p)


def strip_wrapper_prefixes(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop a "module."/"model." prefix shared by every key (DDP, Lightning, EMA wrappers), repeatedly."""
    out = dict(state)
    while out:
        prefix = next((p for p in _WRAPPER_PREFIXES if all(k.startswith(p) for k in out)), None)
        if prefix is None:
            break
        out = {k[len(prefix) :]: v for k, v in out.items()}
    return out


def _module_name(model: nn.Module, target: nn.Module) -> str:
    return next(name for name, mod in model.named_modules() if mod is target)


def head_keys(model: nn.Module) -> set[str]:
    """State-dict keys of the classifier that ``get_classifier()`` returns."""
    head = model.get_classifier()
    prefix = _module_name(model, head)
    return {f"{prefix}.{name}" if prefix else name for name in head.state_dict()}


def stem_conv_name(model: nn.Module) -> str:
    """Name of the conv that sees the input image: timm's ``pretrained_cfg['first_conv']`` or the first Conv2d."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    first = cfg.get("first_conv")
    modules = dict(model.named_modules())
    if isinstance(first, str) and isinstance(modules.get(first), nn.Conv2d):
        return first
    for name, mod in modules.items():
        if isinstance(mod, nn.Conv2d):
            return name
    raise ModelError(f"{type(model).__name__} has no Conv2d stem to adapt")


def _adapt_stem(key: str, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor | None:
    """The source stem folded to the target's input channels, or None when the shapes differ otherwise."""
    same_rest = src.shape[0] == dst.shape[0] and src.shape[2:] == dst.shape[2:]
    if src.ndim != 4 or not same_rest or src.shape[1] != 3:
        return None
    logger.info("adapting stem %s from 3 to %d input channels", key, dst.shape[1])
    return adapt_input_conv(dst.shape[1], src)


def _check_keys(source: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor], origin: str) -> None:
    unexpected = sorted(set(source) - set(target))
    missing = sorted(k for k in set(target) - set(source) if not k.endswith("num_batches_tracked"))
    if unexpected or missing:
        raise ModelError(
            f"weights {origin} do not fit the model: missing {missing[:5]} ({len(missing)}), "
            f"unexpected {unexpected[:5]} ({len(unexpected)})"
        )


def _merge(model: nn.Module, source: Mapping[str, torch.Tensor], origin: str) -> WeightsReport:
    target = model.state_dict()
    _check_keys(source, target, origin)
    heads = head_keys(model)
    stem_name = stem_conv_name(model)
    stem_key = f"{stem_name}.weight"
    small_stem = isinstance(model.get_submodule(stem_name), SmallStemConv)
    merged: dict[str, torch.Tensor] = {}
    skipped: list[str] = []
    adapted: list[str] = []
    for key, src in source.items():
        dst = target[key]
        if src.shape == dst.shape:
            merged[key] = src
        elif key in heads or (small_stem and key == stem_key):
            skipped.append(key)
        elif key == stem_key and (folded := _adapt_stem(key, src, dst)) is not None:
            merged[key] = folded
            adapted.append(key)
        else:
            raise ModelError(f"weights {origin}: '{key}' has shape {tuple(src.shape)}, model has {tuple(dst.shape)}")
    model.load_state_dict(merged, strict=False)
    if skipped:
        logger.warning("weights %s: kept fresh initialisation for %s (shape differs)", origin, ", ".join(skipped))
    return WeightsReport(origin, len(merged), tuple(skipped), tuple(adapted))


def _package_source(model_name: str, weights: str) -> dict[str, torch.Tensor]:
    scheme, _, name = weights.partition(":")
    if scheme != "package" or name not in PACKAGE_SOURCES:
        raise ModelError(
            f"model '{model_name}': weights source '{weights}' is not one of "
            f"{', '.join('package:' + n for n in PACKAGE_SOURCES)}"
        )
    return PACKAGE_SOURCES[name]()


def load_pretrained_weights(model: nn.Module, spec: ModelSpec, weights_path: str | None = None) -> WeightsReport:
    """Load local weights into ``model`` in place: ``weights_path`` if given, else the spec's package source.

    Raises:
        ModelError: no local source exists, the file is unreadable, or the tensors do not fit the model.
    """
    if weights_path is not None:
        state, origin = read_state_dict(weights_path), str(weights_path)
    elif spec.weights is not None:
        state, origin = _package_source(spec.name, spec.weights), spec.weights
    else:
        raise ModelError(
            f"no local weights for '{spec.name}': pass model.weights_path (a .pth/.pt/.safetensors state dict); "
            "medopt never downloads weights"
        )
    report = _merge(model, strip_wrapper_prefixes(state), origin)
    logger.info("loaded %d tensors into '%s' from %s", report.loaded, spec.name, origin)
    return report
