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
