"""The codec: raw tensors are checked, images and DICOM go through the data stage's own preprocessing."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medopt.config import DicomConfig, PreprocessConfig
from medopt.data.dicom import read_dicom
from medopt.data.readers import read_pil, stack_images
from medopt.data.transforms import preprocess_batch
from medopt.models.geometry import ModelGeometry
from medopt.serve.codec import (
    CodecError,
    InputSpec,
    check_tensor,
    decode_images,
    decode_v1,
    decode_v2_inputs,
    is_dicom,
    probabilities,
)

PRE = PreprocessConfig(image_size=20, crop="center", crop_size=16, normalize="meanstd")
GEOMETRY = ModelGeometry.for_preprocess(PRE, in_chans=1, class_names=("a", "b"), task="binary")
SPEC = InputSpec(geometry=GEOMETRY, preprocess=PRE, dicom=DicomConfig(), max_rows=4)


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def dicom_bytes(pixels: np.ndarray, tmp_path: Path) -> bytes:
    from dicom_files import write_dicom

    return write_dicom(tmp_path / "x.dcm", pixels.astype(np.uint16), center=1000, width=1500).read_bytes()


def test_tensor_passes_through_unchanged() -> None:
    x = np.random.default_rng(0).standard_normal((3, 1, 16, 16)).astype(np.float32)
    np.testing.assert_array_equal(decode_v1({"instances": x.tolist()}, SPEC), x)
    np.testing.assert_array_equal(decode_v1({"inputs": x[0].tolist()}, SPEC), x[:1])


@pytest.mark.parametrize(("value", "match"), [
    (np.zeros((1, 3, 16, 16)), "expected shape"),
    (np.zeros((1, 1, 8, 8)), "expected shape"),
    (np.full((1, 1, 16, 16), np.nan), "NaN"),
    (np.full((1, 1, 16, 16), np.inf), "NaN or infinite"),
    (np.zeros((5, 1, 16, 16)), "between 1 and 4"),
    (np.array([["a"]]), "expected numbers"),
])
def test_bad_tensors_raise(value: np.ndarray, match: str) -> None:
    with pytest.raises(CodecError, match=match):
        check_tensor(value, SPEC, "input")


@pytest.mark.parametrize("body", [[], {"x": 1}, {"instances": []}, {"instances": [[1, 2], [3]]},
                                  {"instances": [{"b64": "@@"}]}, {"instances": [{"image_bytes": {}}]},
                                  {"instances": [{"b64": ""}, [1.0]]}, {"instances": ["1.0"]}])
def test_bad_v1_bodies_raise(body: object) -> None:
    with pytest.raises(CodecError):
        decode_v1(body, SPEC)


def test_png_equals_data_stage_preprocessing(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (24, 30), dtype=np.uint8), rng.integers(0, 256, (20, 20), dtype=np.uint8)]
    blobs = [png_bytes(im) for im in images]
    for i, b in enumerate(blobs):
        (tmp_path / f"{i}.png").write_bytes(b)
    expected = preprocess_batch(stack_images([read_pil(tmp_path / f"{i}.png") for i in range(2)], 20), PRE).numpy()
    body = {"instances": [{"image_bytes": {"b64": base64.b64encode(b).decode()}} for b in blobs]}
    got = decode_v1(body, SPEC)
    assert got.shape == (2, 1, 16, 16)
    np.testing.assert_array_equal(got, expected)


def test_dicom_equals_data_stage_preprocessing(tmp_path: Path) -> None:
    pixels = np.random.default_rng(2).integers(0, 4000, (24, 24)).astype(np.uint16)
    blob = dicom_bytes(pixels, tmp_path)
    assert is_dicom(blob)
    expected = preprocess_batch(stack_images([read_dicom(tmp_path / "x.dcm", DicomConfig())], 20), PRE).numpy()
    np.testing.assert_array_equal(decode_images([blob], SPEC), expected)


def test_corrupt_and_truncated_files_raise(tmp_path: Path) -> None:
    png = png_bytes(np.zeros((20, 20), dtype=np.uint8))
    dcm = dicom_bytes(np.zeros((24, 24), dtype=np.uint16), tmp_path)
    for blob in (b"not an image", png[: len(png) // 2], dcm[:200], b""):
        with pytest.raises(CodecError, match="image 0"):
            decode_images([blob], SPEC)


def test_colour_image_for_gray_model_is_refused() -> None:
    rgb = np.random.default_rng(3).integers(0, 256, (20, 20, 3), dtype=np.uint8)
    with pytest.raises(CodecError, match="model expects 1"):
        decode_images([png_bytes(rgb)], SPEC)


def test_v2_inputs_fp32_uint8_bytes_and_bad_dtypes() -> None:
    from kserve import InferInput

    x = np.random.default_rng(4).standard_normal((2, 1, 16, 16)).astype(np.float32)
    fp32 = InferInput("input", list(x.shape), "FP32", data=x.ravel().tolist())
    np.testing.assert_allclose(decode_v2_inputs([fp32], SPEC), x)
    img = np.random.default_rng(5).integers(0, 256, (1, 20, 20, 1), dtype=np.uint8)
    u8 = InferInput("input", [1, 20, 20, 1], "UINT8", data=img.ravel().tolist())
    np.testing.assert_array_equal(decode_v2_inputs([u8], SPEC), preprocess_batch(img, PRE).numpy())
    png = base64.b64encode(png_bytes(img[0, :, :, 0])).decode()
    files = InferInput("input", [1], "BYTES", data=[png])
    np.testing.assert_array_equal(decode_v2_inputs([files], SPEC), preprocess_batch(img, PRE).numpy())
    with pytest.raises(CodecError, match="INT32 not supported"):
        decode_v2_inputs([InferInput("input", [1], "INT32", data=[1])], SPEC)
    with pytest.raises(CodecError, match="does not match shape"):
        decode_v2_inputs([InferInput("input", [1, 1, 16, 16], "FP32", data=[1.0, 2.0])], SPEC)
    with pytest.raises(CodecError, match="exactly one input"):
        decode_v2_inputs([fp32, fp32], SPEC)


def test_probabilities_match_torch() -> None:
    logits = np.random.default_rng(6).standard_normal((5, 3)).astype(np.float32) * 10
    np.testing.assert_allclose(probabilities(logits, "multiclass"),
                               torch.softmax(torch.from_numpy(logits), 1).numpy(), atol=1e-6)
    np.testing.assert_allclose(probabilities(logits, "multilabel"),
                               torch.sigmoid(torch.from_numpy(logits)).numpy(), atol=1e-6)
