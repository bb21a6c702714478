"""Requests to model-ready tensors and model outputs to responses: the transformer step of the server.

Everything a client can send ends up as one float32 (N,C,H,W) batch: raw tensors are checked (shape, dtype, finite
values) and passed through; encoded images (PNG/JPEG) and DICOM files go through the data stage's own readers and
training's own preprocessing (``medopt.data.preprocess``, numpy, no torch) with the artifact's preprocessing, so
serving sees pixels exactly as training did. The functions
here know nothing about KServe's model lifecycle, so the same step can run inside the predictor or as a transformer.
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from medopt.config import DicomConfig, PreprocessConfig
from medopt.data.dicom import read_dicom
from medopt.data.readers import read_pil, stack_images
from medopt.serve.codec_error import CodecError
from medopt.models.geometry import ModelGeometry
from medopt.data.dicom_decode import looks_like_dicom
from medopt.data.preprocess import preprocess_images

OUTPUT_PROBS = "probabilities"
OUTPUT_LABEL = "label"
OUTPUT_CLASS = "class_name"


@dataclass(frozen=True)
class InputSpec:
    """What the model accepts (its saved geometry) and how raw pixels become model input."""

    geometry: ModelGeometry
    preprocess: PreprocessConfig
    dicom: DicomConfig
    max_rows: int

    @property
    def in_chans(self) -> int:
        return self.geometry.in_chans

    @property
    def size(self) -> int:
        """Side length of the model input (after resize and crop)."""
        return self.geometry.input_size

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.geometry.input_shape


@dataclass(frozen=True)
class ModelInfo:
    """Identity of the served model, echoed in every response so clients can tell which model answered."""

    name: str
    version: str
    sha256: str
    class_names: tuple[str, ...]
    task: str


# ------------------------------------------------------------------------------------------------ tensors
def check_tensor(x: np.ndarray, spec: InputSpec, where: str) -> np.ndarray:
    """Validate a raw model-input batch: (N,C,H,W) or one (C,H,W) sample, numeric, finite, at most max_rows."""
    if x.dtype.kind not in "iuf":
        raise CodecError(f"{where}: expected numbers, got dtype {x.dtype}")
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or tuple(x.shape[1:]) != spec.shape:
        raise CodecError(f"{where}: expected shape (N, {', '.join(map(str, spec.shape))}), got {tuple(x.shape)}")
    if not 1 <= x.shape[0] <= spec.max_rows:
        raise CodecError(f"{where}: batch of {x.shape[0]} rows; between 1 and {spec.max_rows} allowed")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise CodecError(f"{where}: tensor contains NaN or infinite values")
    return x


def _numeric_array(rows: Any, where: str) -> np.ndarray:
    """JSON numbers (nested lists) to an array without letting strings or ragged lists through."""
    try:
        arr = np.asarray(rows)
    except (ValueError, TypeError) as exc:
        raise CodecError(f"{where}: not a rectangular numeric array ({exc.__class__.__name__})") from None
    if arr.dtype.kind not in "iuf":
        raise CodecError(f"{where}: expected numbers, got {arr.dtype.kind!r}-kind values")
    return arr


# ------------------------------------------------------------------------------------------------- images
def is_dicom(blob: bytes) -> bool:
    """DICOM Part 10 files ('DICM' after the 128-byte preamble) and preamble-less datasets, as the data stage reads."""
    return looks_like_dicom(blob)


def _decode_one(blob: bytes, index: int, spec: InputSpec) -> np.ndarray:
    if not blob:
        raise CodecError(f"image {index}: empty payload")
    try:
        image = read_dicom(bytes(blob), spec.dicom) if is_dicom(blob) else read_pil(io.BytesIO(blob))  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001 - decoders raise many types (DataError, DecompressionBombError, ...)
        reason = str(exc).split(": ", 1)[-1] if ": " in str(exc) else exc.__class__.__name__
        raise CodecError(f"image {index}: not a decodable PNG/JPEG/DICOM file ({reason})") from None
    if image.ndim not in (2, 3) or min(image.shape[:2]) < 1:
        raise CodecError(f"image {index}: unsupported pixel shape {image.shape}")
    return image


def images_to_tensor(images: np.ndarray, spec: InputSpec, where: str = "images") -> np.ndarray:
    """A uint8 (N,H,W) or (N,H,W,C) batch through the training preprocessing, checked against the model input."""
    if images.dtype != np.uint8 or images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (1, 3)):
        raise CodecError(f"{where}: expected uint8 (N,H,W) or (N,H,W,C) with C in 1 or 3, got {images.dtype} "
                         f"{tuple(images.shape)}")
    if not 1 <= images.shape[0] <= spec.max_rows or min(images.shape[1:3]) < 1:
        raise CodecError(f"{where}: {images.shape[0]} images of {images.shape[1:3]}; 1 to {spec.max_rows} allowed")
    x = preprocess_images(images if images.ndim == 4 else images[..., None], spec.preprocess, spec.size)
    if x.shape[1] != spec.in_chans:
        raise CodecError(f"{where}: images have {x.shape[1]} channel(s) after preprocessing; the model expects "
                         f"{spec.in_chans}")
    return np.ascontiguousarray(x, dtype=np.float32)


def decode_images(blobs: Sequence[bytes], spec: InputSpec) -> np.ndarray:
    """Encoded PNG/JPEG/DICOM files to one model-input batch, read and resized as the data stage does."""
    if not 1 <= len(blobs) <= spec.max_rows:
        raise CodecError(f"{len(blobs)} images in one request; 1 to {spec.max_rows} allowed")
    images = [_decode_one(b, i, spec) for i, b in enumerate(blobs)]
    return images_to_tensor(stack_images(images, spec.preprocess.image_size), spec)


def b64decode(text: Any, where: str) -> bytes:
    """Strict base64 (TF-serving's {"b64": ...}); bad padding or characters are a client error."""
    if not isinstance(text, str):
        raise CodecError(f"{where}: base64 payload must be a string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise CodecError(f"{where}: invalid base64") from None


# --------------------------------------------------------------------------------------------------- V1
def _v1_blob(row: dict[str, Any], index: int) -> bytes:
    """TF-serving style {"image_bytes": {"b64": ...}} (or {"b64": ...}) to raw bytes."""
    inner = row.get("image_bytes", row)
    if not isinstance(inner, dict) or "b64" not in inner:
        raise CodecError(f"instances[{index}]: expected {{\"image_bytes\": {{\"b64\": ...}}}}")
    return b64decode(inner["b64"], f"instances[{index}].b64")


def decode_v1(body: Any, spec: InputSpec) -> np.ndarray:
    """A V1 body ({"instances": [...]} rows or {"inputs": tensor}) to a model-input batch."""
    if not isinstance(body, dict):
        raise CodecError("V1 body must be a JSON object with 'instances' or 'inputs'")
    key = "instances" if "instances" in body else "inputs" if "inputs" in body else None
    if key is None:
        raise CodecError("V1 body must have 'instances' or 'inputs'")
    rows = body[key]
    if not isinstance(rows, list) or not rows:
        raise CodecError(f"'{key}' must be a non-empty list")
    if len(rows) > spec.max_rows:
        raise CodecError(f"'{key}' has {len(rows)} rows; at most {spec.max_rows} allowed")
    dicts = [isinstance(r, dict) for r in rows]
    if all(dicts):
        return decode_images([_v1_blob(r, i) for i, r in enumerate(rows)], spec)
    if any(dicts):
        raise CodecError(f"'{key}' mixes image objects and tensors")
    arr = _numeric_array(rows, key)
    if key == "instances" and arr.ndim != 4:
        raise CodecError(f"'instances' rows must each be (C,H,W) = {spec.shape}, got array shape {arr.shape}")
    return check_tensor(arr, spec, key)


# --------------------------------------------------------------------------------------------------- V2
def _input_array(infer_input: Any) -> np.ndarray:
    try:
        return infer_input.as_numpy()
    except Exception as exc:  # noqa: BLE001 - kserve raises ValueError/InvalidInput/TypeError for bad data
        raise CodecError(f"input '{infer_input.name}': data does not match shape {infer_input.shape} and "
                         f"datatype {infer_input.datatype} ({exc.__class__.__name__})") from None


def _bytes_items(arr: np.ndarray, name: str) -> list[bytes]:
    """BYTES tensor elements: raw bytes (binary/gRPC) or base64 strings (JSON)."""
    out = []
    for i, item in enumerate(arr.reshape(-1)):
        if isinstance(item, (bytes, bytearray)):
            out.append(bytes(item))
        elif isinstance(item, str):
            out.append(b64decode(item, f"input '{name}'[{i}]"))
        else:
            raise CodecError(f"input '{name}'[{i}]: BYTES elements must be bytes or base64 strings")
    return out


def decode_v2_inputs(inputs: Sequence[Any], spec: InputSpec) -> np.ndarray:
    """The one input of a V2 request (FP32 tensor, UINT8 NHWC images, or BYTES files) to a model-input batch."""
    if len(inputs) != 1:
        raise CodecError(f"expected exactly one input tensor, got {len(inputs)}")
    inp = inputs[0]
    if inp.datatype == "FP32":
        return check_tensor(_input_array(inp), spec, f"input '{inp.name}'")
    if inp.datatype == "UINT8":
        arr = _input_array(inp)
        if arr.ndim != 4:
            raise CodecError(f"input '{inp.name}': UINT8 images must be (N,H,W,C), got shape {arr.shape}")
        return images_to_tensor(arr, spec, f"input '{inp.name}'")
    if inp.datatype == "BYTES":
        return decode_images(_bytes_items(_input_array(inp), inp.name), spec)
    raise CodecError(f"input '{inp.name}': datatype {inp.datatype} not supported; send FP32 (N,C,H,W) tensors, "
                     "UINT8 (N,H,W,C) images or BYTES image/DICOM files")


# ------------------------------------------------------------------------------------------------ outputs
def probabilities(logits: np.ndarray, task: str) -> np.ndarray:
    """Softmax (binary/multiclass) or sigmoid (multilabel) of logits, as the trainer computes them."""
    z = np.asarray(logits, dtype=np.float64)
    if task == "multilabel":
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def class_name(info: ModelInfo, index: int) -> str:
    return info.class_names[index] if index < len(info.class_names) else str(index)


def encode_v1(probs: np.ndarray, info: ModelInfo) -> dict[str, Any]:
    """V1 response: one prediction per row plus the model's identity."""
    labels = probs.argmax(axis=1)
    predictions = [{OUTPUT_PROBS: [float(p) for p in row], OUTPUT_LABEL: int(k), OUTPUT_CLASS: class_name(info, int(k))}
                   for row, k in zip(probs, labels)]
    return {"predictions": predictions, "model_name": info.name, "model_version": info.version,
            "sha256": info.sha256}


def encode_v2(probs: np.ndarray, info: ModelInfo, request: Any) -> Any:
    """V2 response (REST or gRPC): probabilities FP32 (N,K), label INT64 (N,), class_name BYTES (N,)."""
    from kserve import InferOutput, InferResponse

    labels = probs.argmax(axis=1).astype(np.int64)
    names = np.array([class_name(info, int(k)).encode() for k in labels], dtype=np.object_)
    binary = bool(getattr(request, "use_binary_outputs", False))
    outputs = []
    for name, arr, dtype in ((OUTPUT_PROBS, probs, "FP32"), (OUTPUT_LABEL, labels, "INT64"), (OUTPUT_CLASS, names, "BYTES")):
        out = InferOutput(name=name, shape=list(arr.shape), datatype=dtype)
        out.set_data_from_numpy(arr, binary_data=binary)
        outputs.append(out)
    return InferResponse(response_id=request.id or "", model_name=info.name, model_version=info.version,
                         infer_outputs=outputs, parameters={"sha256": info.sha256, "model_version": info.version},
                         requested_outputs=request.request_outputs, use_binary_outputs=binary)
