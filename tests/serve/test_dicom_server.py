"""Compressed hospital DICOM through the live server: decoded exactly as the data stage reads it, and a transfer
syntax no plugin decodes is a one-line 4xx naming its UID and name (not a 5xx, and the server keeps serving)."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import numpy as np
import pytest

from dicom_files import Case, build, build_unsupported
from medopt.config import DicomConfig
from medopt.data.dicom import read_dicom
from medopt.data.readers import stack_images
from medopt.data.transforms import preprocess_batch
from medopt.serve.http_client import MedoptClient
from serve_fixtures import NAME, Running, Stored, direct_probs

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # a server subprocess: ~6 s to start

COMPRESSED = (Case("1.2.840.10008.1.2.4.70", bits=16, signed=True), Case("1.2.840.10008.1.2.4.80", bits=12),
              Case("1.2.840.10008.1.2.4.90", bits=12), Case("1.2.840.10008.1.2.4.50", "YBR_FULL_422", bits=8,
                                                             tolerance=40))


def _v1(server: Running, blobs: list[bytes]) -> httpx.Response:
    rows = [{"image_bytes": {"b64": base64.b64encode(b).decode()}} for b in blobs]
    return httpx.post(f"{server.url}/v1/models/{NAME}:predict", json={"instances": rows}, timeout=30)


def test_compressed_dicom_matches_the_data_stage(server: Running, stored: Stored, tmp_path: Path) -> None:
    paths = [build(case, tmp_path / f"{case.id}.dcm")[0] for case in COMPRESSED]
    images = [read_dicom(p, DicomConfig()) for p in paths]
    x = preprocess_batch(stack_images(images, stored.preprocess.image_size), stored.preprocess).numpy()
    got = MedoptClient(server.url, NAME).infer_v1_images([p.read_bytes() for p in paths])
    np.testing.assert_allclose(got.probabilities, direct_probs(stored.onnx_path, x), atol=1e-6)


@pytest.mark.parametrize(("syntax", "name"), [("1.2.840.10008.1.2.4.100", "MPEG2 Main Profile / Main Level"),
                                              ("1.2.826.0.1.3680043.8.498.1", "unknown")])
def test_unsupported_transfer_syntax_is_4xx_naming_it(syntax: str, name: str, server: Running, stored: Stored,
                                                      tmp_path: Path) -> None:
    blob = build_unsupported(syntax, tmp_path / "video.dcm").read_bytes()
    response = _v1(server, [blob])
    assert 400 <= response.status_code < 500, response.text
    reason = response.json().get("error") or response.json().get("detail")
    assert isinstance(reason, str) and "\n" not in reason
    assert f"transfer syntax {syntax} ({name}) is not supported" in reason
    ok = build(COMPRESSED[0], tmp_path / "ok.dcm")[0].read_bytes()
    assert _v1(server, [ok]).status_code == 200  # the server is unharmed


def test_dicom_without_preamble_is_served_like_the_data_stage(server: Running, stored: Stored, tmp_path: Path) -> None:
    """PACS exports without the 128-byte preamble (file meta kept, or a bare dataset) reach the DICOM reader too."""
    from dicom_files import bare_dataset, without_preamble

    source = build(COMPRESSED[1], tmp_path / "jls.dcm")[0]
    plain = build(Case("1.2.840.10008.1.2", bits=12), tmp_path / "implicit.dcm")[0]
    paths = [without_preamble(source, tmp_path / "no-preamble.dcm"), bare_dataset(plain, tmp_path / "bare.dcm")]
    images = [read_dicom(p, DicomConfig()) for p in paths]
    x = preprocess_batch(stack_images(images, stored.preprocess.image_size), stored.preprocess).numpy()
    got = MedoptClient(server.url, NAME).infer_v1_images([p.read_bytes() for p in paths])
    np.testing.assert_allclose(got.probabilities, direct_probs(stored.onnx_path, x), atol=1e-6)
