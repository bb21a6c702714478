"""DICOM to uint8, checked against values computed by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medopt.config import DicomConfig
from medopt.data import DataError, read_dicom

NO_WINDOW = DicomConfig()


def test_8bit_monochrome2_minmax(tmp_path: Path, write_dicom) -> None:
    path = write_dicom(tmp_path / "a.dcm", np.array([[0, 100], [150, 250]], dtype=np.uint8))
    out = read_dicom(path, NO_WINDOW)
    # min-max over [0, 250]: x / 250 * 255
    assert out.dtype == np.uint8 and out.shape == (2, 2)
    np.testing.assert_array_equal(out, [[0, 102], [153, 255]])


def test_8bit_monochrome1_is_inverted(tmp_path: Path, write_dicom) -> None:
    path = write_dicom(tmp_path / "a.dcm", np.array([[0, 100], [150, 250]], dtype=np.uint8), photometric="MONOCHROME1")
    np.testing.assert_array_equal(read_dicom(path, NO_WINDOW), [[255, 153], [102, 0]])


def test_16bit_rescale_and_file_window(tmp_path: Path, write_dicom) -> None:
    raw = np.array([[312, 562], [612, 900]], dtype=np.uint16)
    path = write_dicom(tmp_path / "ct.dcm", raw, slope=2.0, intercept=-1024.0, center=0.0, width=400.0)
    # HU = 2*raw - 1024 = [[-400, 100], [200, 776]]; window [-200, 200]: (HU + 200) / 400 * 255, clipped
    np.testing.assert_array_equal(read_dicom(path, NO_WINDOW), [[0, 191], [255, 255]])


def test_config_window_overrides_file_tags(tmp_path: Path, write_dicom) -> None:
    raw = np.array([[312, 562], [612, 900]], dtype=np.uint16)
    path = write_dicom(tmp_path / "ct.dcm", raw, slope=2.0, intercept=-1024.0, center=0.0, width=400.0)
    out = read_dicom(path, DicomConfig(window_center=125.0, window_width=200.0))
    # window [25, 225]: 100 -> 75/200*255 = 95.625 -> 96; 200 -> 175/200*255 = 223.125 -> 223
    np.testing.assert_array_equal(out, [[0, 96], [223, 255]])


def test_signed_16bit_minmax_and_bytes_input(tmp_path: Path, write_dicom) -> None:
    path = write_dicom(tmp_path / "s.dcm", np.array([[-100, 0], [60, 300]], dtype=np.int16))
    out = read_dicom(path, NO_WINDOW)
    # range [-100, 300]: (x + 100) / 400 * 255 -> 0, 63.75, 102, 255
    np.testing.assert_array_equal(out, [[0, 64], [102, 255]])
    np.testing.assert_array_equal(read_dicom(path.read_bytes(), NO_WINDOW), out)


def test_monochrome1_with_window(tmp_path: Path, write_dicom) -> None:
    raw = np.array([[312, 562], [612, 900]], dtype=np.uint16)
    path = write_dicom(tmp_path / "m1.dcm", raw, photometric="MONOCHROME1", slope=2.0, intercept=-1024.0,
                       center=0.0, width=400.0)
    np.testing.assert_array_equal(read_dicom(path, NO_WINDOW), [[255, 64], [0, 0]])


def test_not_dicom_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.dcm"
    bad.write_bytes(b"this is not a DICOM file at all")
    with pytest.raises(DataError, match="broken.dcm"):
        read_dicom(bad, NO_WINDOW)
    with pytest.raises(DataError, match="missing.dcm.*not found"):
        read_dicom(tmp_path / "missing.dcm", NO_WINDOW)


def test_half_set_window_is_rejected_by_the_config() -> None:
    from medopt.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="set both data.dicom.window_center and window_width"):
        load_config(None, ["data.dicom.window_center=40"])


# ------------------------------------------------------------------------ transfer syntaxes and colour models
from dicom_files import CASES, UNSUPPORTED, Case, bare_dataset, build, build_unsupported, expected_frame  # noqa: E402
from dicom_files import without_preamble  # noqa: E402

from medopt.data.dicom import UnsupportedDicomError, minmax_to_uint8  # noqa: E402
from medopt.data.dicom_decode import decode_dicom, looks_like_dicom, open_dicom  # noqa: E402


def _luminance(pixels: np.ndarray) -> np.ndarray:
    return pixels if pixels.ndim == 2 else pixels.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def _max_error(got: np.ndarray, want: np.ndarray) -> int:
    assert got.shape == want.shape, (got.shape, want.shape)
    return int(np.abs(got.astype(np.int64) - want.astype(np.int64)).max())


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_decodes_transfer_syntax_and_photometric(case: Case, tmp_path: Path) -> None:
    """Stored values (or RGB) equal the source, exactly when lossless; read_dicom windows that same frame."""
    path, source = build(case, tmp_path / "x.dcm")
    want = expected_frame(case, source, case.frames // 2 if case.frames > 1 else 0)
    assert _max_error(decode_dicom(path), want) <= case.tolerance
    reference = minmax_to_uint8(_luminance(want))
    reference = 255 - reference if case.photometric == "MONOCHROME1" else reference
    span = float(np.ptp(_luminance(want)))
    out = read_dicom(path, NO_WINDOW)
    assert out.dtype == np.uint8 and out.shape == want.shape[:2]
    # min-max of a lossy decode: value, minimum and maximum each move by <= tolerance, so the 8-bit output moves
    # by <= 4 * tolerance * 255 / span, plus 1 for rounding
    assert _max_error(out, reference) <= (0 if case.tolerance == 0 else 4 * case.tolerance * 255 / span + 1)


@pytest.mark.parametrize("case", [c for c in CASES if "JPEGLS" in c.id], ids=lambda c: c.id)
def test_jpeg_ls_decodes_the_same_without_pyjpegls(case: Case, tmp_path: Path) -> None:
    """The slim serving image decodes JPEG-LS with pylibjpeg-libjpeg only; training may use pyjpegls: same pixels."""
    from pydicom.pixels import get_decoder

    path, _ = build(case, tmp_path / "x.dcm")
    ds, _ = open_dicom(path)
    decoder = get_decoder(ds.file_meta.TransferSyntaxUID)
    only_libjpeg, _ = decoder.as_array(ds, index=0 if case.frames > 1 else None, decoding_plugin="pylibjpeg")
    np.testing.assert_array_equal(only_libjpeg, decode_dicom(path, "first"))


@pytest.mark.parametrize("policy", ["first", "middle"])
def test_frame_policy_picks_the_frame(policy: str, tmp_path: Path) -> None:
    case = Case("1.2.840.10008.1.2.1", bits=12, frames=3)
    path, source = build(case, tmp_path / "mf.dcm")
    index = 0 if policy == "first" else 1
    np.testing.assert_array_equal(decode_dicom(path, policy), source[index])  # type: ignore[arg-type]
    np.testing.assert_array_equal(read_dicom(path, DicomConfig(frame_policy=policy)), minmax_to_uint8(source[index]))


def test_frame_policy_reject_names_the_frame_count(tmp_path: Path) -> None:
    path, _ = build(Case("1.2.840.10008.1.2.4.70", bits=12, frames=3), tmp_path / "mf.dcm")
    with pytest.raises(UnsupportedDicomError, match="multi-frame DICOM with 3 frames is rejected"):
        read_dicom(path, DicomConfig(frame_policy="reject"))
    single, _ = build(Case("1.2.840.10008.1.2.4.70", bits=12), tmp_path / "one.dcm")
    assert read_dicom(single, DicomConfig(frame_policy="reject")).shape == (32, 40)


def test_frame_policy_is_validated_by_the_config() -> None:
    from medopt.config import ConfigError, load_config

    assert load_config(None, ["data.dicom.frame_policy=first"]).data.dicom.frame_policy == "first"
    with pytest.raises(ConfigError, match="frame_policy"):
        load_config(None, ["data.dicom.frame_policy=last"])


@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.70"])
def test_files_without_preamble_decode_like_the_full_file(syntax: str, tmp_path: Path) -> None:
    path, source = build(Case(syntax, bits=12), tmp_path / "full.dcm")
    stripped = without_preamble(path, tmp_path / "stripped.dcm")
    assert stripped.read_bytes()[:4] != path.read_bytes()[:4] and looks_like_dicom(stripped.read_bytes())
    np.testing.assert_array_equal(read_dicom(stripped, NO_WINDOW), read_dicom(path, NO_WINDOW))
    np.testing.assert_array_equal(decode_dicom(stripped.read_bytes()), source[0])


def test_bare_dataset_without_file_meta_decodes(tmp_path: Path) -> None:
    path, source = build(Case("1.2.840.10008.1.2.1", bits=16, signed=True), tmp_path / "full.dcm")
    bare = bare_dataset(path, tmp_path / "bare.dcm")
    assert looks_like_dicom(bare.read_bytes())
    np.testing.assert_array_equal(decode_dicom(bare), source[0])


@pytest.mark.parametrize("blob", [b"\x89PNG\r\n\x1a\n" + bytes(200), b"\x08\x00" + b"not really a dataset" * 20,
                                  bytes(range(256)) * 3])
def test_non_dicom_bytes_are_a_clear_error(blob: bytes) -> None:
    with pytest.raises(DataError, match=r"^<DICOM bytes>: not a DICOM file \(no 'DICM' marker"):
        read_dicom(blob, NO_WINDOW)


def test_looks_like_dicom_only_for_dicom(tmp_path: Path, write_dicom) -> None:
    assert looks_like_dicom(write_dicom(tmp_path / "a.dcm", np.zeros((4, 4), np.uint8)).read_bytes())
    assert not looks_like_dicom(b"\x89PNG\r\n\x1a\n" + bytes(200))
    assert not looks_like_dicom(b"\xff\xd8\xff\xe0" + bytes(200))


@pytest.mark.parametrize("syntax", UNSUPPORTED)
def test_unsupported_transfer_syntax_names_uid_and_name(syntax: str, tmp_path: Path) -> None:
    from pydicom.uid import UID

    path = build_unsupported(syntax, tmp_path / "video.dcm")
    name = UID(syntax).name if UID(syntax).name != syntax else "unknown"
    with pytest.raises(UnsupportedDicomError) as info:
        read_dicom(path, NO_WINDOW)
    message = str(info.value)
    assert f"transfer syntax {syntax} ({name}) is not supported" in message and "\n" not in message


def test_missing_plugin_names_the_transfer_syntax(tmp_path: Path) -> None:
    """Without pylibjpeg (as a broken image would be), JPEG lossless is a clear error, not a crash."""
    import subprocess
    import sys

    path, _ = build(Case("1.2.840.10008.1.2.4.70", bits=12), tmp_path / "sv1.dcm")
    code = ("import sys, importlib.abc\n"
            "class Block(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('pylibjpeg', 'libjpeg', 'openjpeg', 'rle'):\n"
            "            raise ModuleNotFoundError(name)\n"
            "sys.meta_path.insert(0, Block())\n"
            "from medopt.config import DicomConfig\n"
            "from medopt.data.dicom import UnsupportedDicomError, read_dicom\n"
            "try:\n"
            f"    read_dicom({str(path)!r}, DicomConfig())\n"
            "except UnsupportedDicomError as exc:\n"
            "    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
    assert ("transfer syntax 1.2.840.10008.1.2.4.70 (JPEG Lossless, Non-Hierarchical, First-Order Prediction "
            "(Process 14 [Selection Value 1])) cannot be decoded, a pixel-data plugin is missing") in out
    assert "pylibjpeg" in out


def test_corrupt_compressed_frame_names_the_syntax(tmp_path: Path) -> None:
    from pydicom import dcmread
    from pydicom.encaps import encapsulate

    path, _ = build(Case("1.2.840.10008.1.2.4.70", bits=12), tmp_path / "sv1.dcm")
    ds = dcmread(path)
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xc3" + bytes(40)])
    ds.save_as(path)
    with pytest.raises(DataError, match=r"cannot decode DICOM pixel data with transfer syntax 1\.2\.840\.10008\.1\.2"
                                        r"\.4\.70 \(JPEG Lossless"):
        read_dicom(path, NO_WINDOW)
