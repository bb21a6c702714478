"""Edge/cloud split inference: cut a network at a named layer, compress what crosses the link, serve the cloud half.

Why explicit decomposition rather than ``torch.fx``: at the stage boundaries of the supported CNN families exactly one
tensor flows forward, so ``edge`` and ``cloud`` are plain ``nn.Sequential`` modules that export to ONNX with one input
and one output each, and the composition runs the very same submodules as ``forward_features`` + ``forward_head``.

Wire format of one sample (``pack_sample``): fp32/fp16 raw little-endian values; int8 a ``<fi`` header (scale as
float32, zero point as int32) followed by the int8 values, dequantized as ``(q - zero_point) * scale``.
"""

from __future__ import annotations

import copy
import logging
import struct
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medopt.compress.export import INPUT_NAME, OUTPUT_NAME, export_onnx
from medopt.errors import MedoptError
from medopt.store import ArtifactStore, Manifest

logger = logging.getLogger(__name__)

CODECS = ("none", "fp16", "int8")
INT8_HEADER = struct.Struct("<fi")
_WIRE_DTYPE = {"none": np.dtype("<f4"), "fp16": np.dtype("<f2"), "int8": np.dtype("i1")}
SUPPORTED_FAMILIES = ("resnet", "efficientnet/mobilenet", "densenet", "vgg", "convnext", "tiny_cnn")


class SplitError(MedoptError, ValueError):
    """A split point, codec, tensor or payload is invalid; the message names what was wrong and what is valid."""


# ------------------------------------------------------------------------------------------- decomposition
def _expand(model: nn.Module, name: str) -> list[tuple[str, nn.Module]]:
    """The children of container ``name`` as ``name.<child>`` units, in forward order."""
    return [(f"{name}.{child}", module) for child, module in getattr(model, name).named_children()]


def _pick(model: nn.Module, *names: str) -> list[tuple[str, nn.Module]]:
    return [(n, getattr(model, n)) for n in names]


def _decompose(model: nn.Module) -> tuple[str, list[tuple[str, nn.Module]], nn.Sequential]:
    """(family, ordered body units, head) whose composition equals ``model.forward`` in eval mode."""
    from timm.models.convnext import ConvNeXt
    from timm.models.densenet import DenseNet
    from timm.models.efficientnet import EfficientNet
    from timm.models.resnet import ResNet
    from timm.models.vgg import VGG

    from medopt.models.tiny import TinyCNN

    if isinstance(model, ResNet):
        units = _pick(model, "conv1", "bn1", "act1", "maxpool", "layer1", "layer2", "layer3", "layer4")
        return "resnet", units, nn.Sequential(model.global_pool, nn.Dropout(float(model.drop_rate)), model.fc)
    if isinstance(model, EfficientNet):
        units = [*_pick(model, "conv_stem", "bn1"), *_expand(model, "blocks"), *_pick(model, "conv_head", "bn2")]
        head = nn.Sequential(model.global_pool, nn.Dropout(float(model.drop_rate)), model.classifier)
        return "efficientnet", units, head
    if isinstance(model, DenseNet):
        return "densenet", _expand(model, "features"), nn.Sequential(model.global_pool, model.head_drop,
                                                                       model.classifier)
    if isinstance(model, VGG):
        return "vgg", _expand(model, "features"), nn.Sequential(model.pre_logits, model.head)
    if isinstance(model, ConvNeXt):
        return "convnext", [*_pick(model, "stem"), *_expand(model, "stages"), *_pick(model, "norm_pre")], \
            nn.Sequential(model.head)
    if isinstance(model, TinyCNN):
        head = nn.Sequential(model.global_pool, nn.Flatten(1), model.head_drop, model.head)
        return "tiny", [*_pick(model, "stem"), *_expand(model, "blocks")], head
    raise SplitError(
        f"cannot split a {type(model).__name__}: supported families are {', '.join(SUPPORTED_FAMILIES)} "
        "(token models such as ViT/Swin pass more than one tensor between stages)"
    )


def split_points(model: nn.Module) -> tuple[str, ...]:
    """Valid split names for ``model`` (timm module names, forward order); splitting at one keeps it on the edge."""
    return tuple(name for name, _ in _decompose(model)[1])


def _sequential(units: list[tuple[str, nn.Module]]) -> nn.Sequential:
    return nn.Sequential(OrderedDict((name.replace(".", "_"), module) for name, module in units))


# --------------------------------------------------------------------------------------------------- codec
@dataclass(frozen=True)
class EncodedTensor:
    """A batch of intermediate tensors as sent edge -> cloud; int8 carries per-sample scale and zero point."""

    codec: str
    data: np.ndarray
    scale: np.ndarray | None = None
    zero_point: np.ndarray | None = None

    def sample_nbytes(self) -> int:
        """Bytes of one sample on the wire (values plus the int8 header)."""
        return wire_bytes(self.data.shape[1:], self.codec)


def _check_codec(codec: str) -> str:
    if codec not in CODECS:
        raise SplitError(f"unknown intermediate codec {codec!r}; valid: {', '.join(CODECS)}")
    return codec


def wire_bytes(shape: tuple[int, ...], codec: str) -> int:
    """Bytes one sample of ``shape`` (without batch axis) takes on the wire under ``codec``."""
    values = int(np.prod(shape, dtype=np.int64)) * _WIRE_DTYPE[_check_codec(codec)].itemsize
    return values + (INT8_HEADER.size if codec == "int8" else 0)


def _quantize_int8(x: np.ndarray) -> EncodedTensor:
    """Per-sample affine int8 over [min(x, 0), max(x, 0)], so zero (ReLU output) is exact."""
    flat = x.reshape(len(x), -1).astype(np.float32)
    lo = np.minimum(flat.min(axis=1, initial=0.0), 0.0)
    hi = np.maximum(flat.max(axis=1, initial=0.0), 0.0)
    scale = ((hi - lo) / 255.0).astype(np.float32)
    scale[scale == 0] = 1.0
    zero_point = np.clip(np.rint(-128.0 - lo / scale), -128, 127).astype(np.int32)
    q = np.clip(np.rint(flat / scale[:, None]) + zero_point[:, None], -128, 127).astype(np.int8)
    return EncodedTensor("int8", q.reshape(x.shape), scale, zero_point)


def encode_intermediate(x: np.ndarray, codec: str) -> EncodedTensor:
    """Compress a batch (N, ...) of float intermediates for the link.

    Raises:
        SplitError: unknown codec, a tensor without a batch axis, or non-finite values.
    """
    _check_codec(codec)
    x = np.asarray(x)
    if x.ndim < 2 or len(x) == 0:
        raise SplitError(f"intermediate tensor must be a non-empty batch (N, ...), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise SplitError("intermediate tensor holds NaN or inf; refusing to encode it")
    if codec == "int8":
        return _quantize_int8(x)
    return EncodedTensor(codec, x.astype(_WIRE_DTYPE[codec]))


def decode_intermediate(enc: EncodedTensor) -> np.ndarray:
    """Float32 batch back from an EncodedTensor (the cloud side's first step)."""
    _check_codec(enc.codec)
    if enc.codec != "int8":
        return enc.data.astype(np.float32)
    if enc.scale is None or enc.zero_point is None:
        raise SplitError("int8 intermediate needs scale and zero_point")
    shape = (-1,) + (1,) * (enc.data.ndim - 1)
    zp = enc.zero_point.astype(np.float32).reshape(shape)
    return ((enc.data.astype(np.float32) - zp) * enc.scale.astype(np.float32).reshape(shape)).astype(np.float32)


def pack_sample(enc: EncodedTensor, index: int = 0) -> bytes:
    """The wire bytes of sample ``index`` (see the module docstring for the layout)."""
    body = np.ascontiguousarray(enc.data[index]).tobytes()
    if enc.codec != "int8":
        return body
    if enc.scale is None or enc.zero_point is None:
        raise SplitError("int8 intermediate needs scale and zero_point")
    return INT8_HEADER.pack(float(enc.scale[index]), int(enc.zero_point[index])) + body


def unpack_sample(payload: bytes, shape: tuple[int, ...], codec: str) -> EncodedTensor:
    """Parse one sample's wire bytes into a batch-of-one EncodedTensor.

    Raises:
        SplitError: the payload length does not match ``shape`` and ``codec`` (truncated or padded).
    """
    expected = wire_bytes(shape, codec)
    if len(payload) != expected:
        raise SplitError(f"{codec} intermediate of shape {tuple(shape)} needs {expected} bytes, got {len(payload)}")
    if codec != "int8":
        return EncodedTensor(codec, np.frombuffer(payload, dtype=_WIRE_DTYPE[codec]).reshape((1, *shape)))
    scale, zero_point = INT8_HEADER.unpack_from(payload)
    if not np.isfinite(scale) or scale <= 0 or not -128 <= zero_point <= 127:
        raise SplitError(f"int8 intermediate header is invalid (scale={scale}, zero_point={zero_point})")
    data = np.frombuffer(payload, dtype=np.int8, offset=INT8_HEADER.size).reshape((1, *shape))
    return EncodedTensor("int8", data, np.array([scale], np.float32), np.array([zero_point], np.int32))


# --------------------------------------------------------------------------------------------- split model
@dataclass(frozen=True)
class TransferBytes:
    """Bytes per image sent edge -> cloud, against sending the uint8 image or the preprocessed float tensor."""

    raw_image: int
    preprocessed: int
    intermediate: int

    @property
    def vs_raw_image(self) -> float:
        return self.intermediate / self.raw_image

    @property
    def vs_preprocessed(self) -> float:
        return self.intermediate / self.preprocessed


class SplitModel(nn.Module):
    """``cloud(decode(encode(edge(x))))``: the whole model, cut at ``at``, with the link's codec in between."""

    def __init__(self, edge: nn.Module, cloud: nn.Module, *, at: str, family: str,
                 input_shape: tuple[int, int, int], intermediate_shape: tuple[int, ...], codec: str) -> None:
        super().__init__()
        self.edge, self.cloud = edge, cloud
        self.at, self.family, self.codec = at, family, _check_codec(codec)
        self.input_shape, self.intermediate_shape = tuple(input_shape), tuple(intermediate_shape)

    def transmit(self, features: torch.Tensor) -> torch.Tensor:
        """What the cloud receives for ``features``: the codec's round trip (identity for 'none')."""
        if self.codec == "none":
            return features
        decoded = decode_intermediate(encode_intermediate(features.detach().cpu().numpy(), self.codec))
        return torch.from_numpy(decoded).to(features.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cloud(self.transmit(self.edge(x)))

    def transfer_bytes(self, raw_channels: int | None = None) -> TransferBytes:
        """Per-image bytes; ``raw_channels`` is the stored image's channel count (default: the model's input)."""
        c, h, w = self.input_shape
        raw = (raw_channels or c) * h * w
        return TransferBytes(raw, c * h * w * 4, wire_bytes(self.intermediate_shape, self.codec))

    def describe(self) -> dict[str, Any]:
        """JSON-ready description of the cut, the tensors at the link and the wire format (for manifests)."""
        dtype = {"none": "float32", "fp16": "float16", "int8": "int8"}[self.codec]
        tb = self.transfer_bytes()
        return {
            "family": self.family, "split_at": self.at, "input_shape": list(self.input_shape),
            "intermediate": {"shape": list(self.intermediate_shape), "dtype": "float32", "codec": self.codec,
                             "wire_dtype": dtype, "wire_bytes": tb.intermediate,
                             "int8_header": "<fi scale,zero_point" if self.codec == "int8" else None},
            "bytes_per_image": {"raw_image": tb.raw_image, "preprocessed": tb.preprocessed,
                                "intermediate": tb.intermediate},
        }


def split_model(model: nn.Module, at: str, *, input_shape: tuple[int, int, int], codec: str = "none") -> SplitModel:
    """Cut a copy of ``model`` after unit ``at`` into an eval-mode SplitModel (the original is left untouched).

    Args:
        at: a name from ``split_points(model)``, e.g. "layer2" (ResNet), "blocks.3" (EfficientNet/MobileNet),
            "features.denseblock2" (DenseNet).
        input_shape: (C, H, W) of one preprocessed image; used to infer the intermediate shape.
        codec: "none" (fp32), "fp16" or "int8" for the edge -> cloud tensor.

    Raises:
        SplitError: unsupported architecture, unknown split name (lists the valid ones) or unknown codec.
    """
    _check_codec(codec)
    family, units, head = _decompose(copy.deepcopy(model).eval())
    names = [n for n, _ in units]
    if at not in names:
        raise SplitError(f"unknown split point {at!r} for this {family} model; valid: {', '.join(names)}")
    k = names.index(at) + 1
    edge = _sequential(units[:k]).eval()
    cloud = nn.Sequential(OrderedDict([("body", _sequential(units[k:])), ("head", head)])).eval()
    with torch.no_grad():
        shape = tuple(edge(torch.zeros((1, *input_shape))).shape[1:])
    logger.info("split %s at %s: intermediate %s, codec %s", family, at, shape, codec)
    return SplitModel(edge, cloud, at=at, family=family, input_shape=input_shape, intermediate_shape=shape,
                      codec=codec)


# ------------------------------------------------------------------------------------------- ONNX + store
@dataclass(frozen=True)
class SplitOnnx:
    edge: Path
    cloud: Path


def export_split_onnx(split: SplitModel, out_dir: str | Path, *, opset: int = 17) -> SplitOnnx:
    """Both halves as ONNX files (``edge.onnx``: image -> intermediate; ``cloud.onnx``: fp32 intermediate -> logits).

    Tensor names are medopt's export names ("input" -> "logits") for both files, so one ONNX predictor serves each.
    """
    if len(split.intermediate_shape) != 3:
        raise SplitError(f"ONNX export needs a (C, H, W) intermediate, got {split.intermediate_shape}")
    out = Path(out_dir)
    edge = export_onnx(split.edge, out / "edge.onnx", input_shape=split.input_shape, opset=opset)
    cloud_shape = tuple(int(d) for d in split.intermediate_shape)
    cloud = export_onnx(split.cloud, out / "cloud.onnx", input_shape=cloud_shape, opset=opset)  # type: ignore[arg-type]
    return SplitOnnx(edge, cloud)


def save_split_artifacts(split: SplitModel, store: ArtifactStore, prefix: str, *, opset: int = 17,
                         parents: tuple[str, ...] = (), config: dict[str, Any] | None = None
                         ) -> tuple[Manifest, Manifest]:
    """Store ``<prefix>/edge.onnx`` and ``<prefix>/cloud.onnx`` (kind ``model/onnx``) with the split in ``meta``.

    The cloud manifest's ``meta.serve`` tells a server what its input is: the intermediate tensor (name, shape,
    dtype float32) and the wire codec it must decode first with ``unpack_sample`` + ``decode_intermediate``.
    """
    info = split.describe()
    io = {"input_name": INPUT_NAME, "output_name": OUTPUT_NAME}
    with tempfile.TemporaryDirectory() as tmp:
        files = export_split_onnx(split, tmp, opset=opset)
        edge = store.put_file(f"{prefix}/edge.onnx", files.edge, kind="model/onnx", config=config, parents=parents,
                              meta={"split": {**info, "role": "edge"}, "serve": {**io, "output": "intermediate"}})
        cloud_input = {**info["intermediate"], "name": INPUT_NAME}
        cloud = store.put_file(
            f"{prefix}/cloud.onnx", files.cloud, kind="model/onnx", config=config, parents=(*parents, edge.key),
            meta={"split": {**info, "role": "cloud"}, "serve": {**io, "input": cloud_input}},
        )
    return edge, cloud
