"""CSV-indexed sources: csv (mixed formats), dicom, nifti; columns, labels, groups and sites."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from medopt.config import DataConfig, DicomConfig, PreprocessConfig
from medopt.data import DataError, load_dataset
from medopt.data.readers import read_nifti


def _write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _cfg(path: Path, source: str = "csv", **kw) -> DataConfig:
    return DataConfig(source=source, path=str(path), preprocess=PreprocessConfig(image_size=8), **kw)


def test_csv_mixed_formats_with_groups_and_sites(tmp_path: Path, write_image, write_dicom, write_nifti) -> None:
    rows = []
    for i in range(24):
        label = "pneumonia" if i % 3 == 0 else "normal"
        value = 200 if label == "pneumonia" else 20
        kind = i % 3
        if kind == 0:
            name = f"img/p{i}.png"
            write_image(tmp_path / name, np.full((8, 8), value, np.uint8))
        elif kind == 1:
            name = f"img/p{i}.dcm"
            write_dicom(tmp_path / name, np.full((8, 8), value, np.uint8), center=128.0, width=256.0)
        else:
            name = f"img/p{i}.nii.gz"
            write_nifti(tmp_path / name, np.full((8, 8, 3), value, np.float32))
        rows.append([name, label, f"patient{i // 2}", f"site{i % 2}"])
    table = _write_csv(tmp_path / "labels.csv", ["file", "dx", "pid", "hospital"], rows)
    cfg = _cfg(table, image_column="file", label_column="dx", group_column="pid", site_column="hospital")
    ds = load_dataset(cfg)
    assert ds.class_names == ("normal", "pneumonia") and ds.task == "binary"
    assert sum(len(s) for s in ds.splits().values()) == 24
    groups = [set(s.groups.tolist()) for s in ds.splits().values()]
    assert not (groups[0] & groups[1]) and not (groups[0] & groups[2]) and not (groups[1] & groups[2])
    assert set(np.unique(ds.train.labels).tolist()) == {0, 1}
    assert set(np.concatenate([s.sites for s in ds.splits().values()]).tolist()) == {"site0", "site1"}


def test_dicom_source_reads_extensionless_files_with_image_root(tmp_path: Path, write_dicom) -> None:
    root = tmp_path / "pacs"
    rows = []
    for i in range(20):
        write_dicom(root / f"IM{i:04d}", np.full((6, 6), i % 2 * 1000, np.uint16), slope=1.0, intercept=-500.0)
        rows.append([f"IM{i:04d}", i % 2])
    table = _write_csv(tmp_path / "labels.csv", ["image", "label"], rows)
    ds = load_dataset(_cfg(table, source="dicom", image_root=str(root), dicom=DicomConfig(window_center=0.0,
                                                                                            window_width=1000.0)))
    assert ds.class_names == ("class_0", "class_1") and ds.image_size == (8, 8)
    for split in ds.splits().values():  # HU -500 -> 0 and 500 -> 255 in window [-500, 500]
        np.testing.assert_array_equal(split.images[:, 0, 0], np.where(split.labels == 1, 255, 0))


def test_nifti_middle_slice_by_hand(tmp_path: Path, write_nifti) -> None:
    volume = np.zeros((4, 5, 3), np.float32)
    volume[:, :, 1] = np.arange(20, dtype=np.float32).reshape(4, 5)
    volume[:, :, 0] = 1000.0  # not the middle slice: must not influence the scaling
    out = read_nifti(write_nifti(tmp_path / "v.nii", volume), DicomConfig())
    expected = np.rint(np.arange(20).reshape(4, 5) / 19 * 255).astype(np.uint8)
    np.testing.assert_array_equal(out, expected)


def test_nifti_source_and_class_names(tmp_path: Path, write_nifti) -> None:
    rows = []
    for i in range(10):
        write_nifti(tmp_path / f"s{i}.nii.gz", np.full((8, 8), float(i), np.float32) + np.eye(8))
        rows.append([f"s{i}.nii.gz", "tumour" if i < 5 else "healthy"])
    table = _write_csv(tmp_path / "labels.csv", ["image", "label"], rows)
    ds = load_dataset(_cfg(table, source="nifti", class_names=("tumour", "healthy")))
    assert ds.class_names == ("tumour", "healthy")
    assert sorted(np.concatenate([s.labels for s in ds.splits().values()]).tolist()) == [0] * 5 + [1] * 5


def test_missing_column_file_and_label(tmp_path: Path, write_image) -> None:
    write_image(tmp_path / "a.png", np.zeros((8, 8), np.uint8))
    table = _write_csv(tmp_path / "t.csv", ["image", "label"], [["a.png", "x"], ["b.png", "y"]])
    with pytest.raises(DataError, match=r"t\.csv: column 'patient' not found"):
        load_dataset(_cfg(table, group_column="patient"))
    with pytest.raises(DataError, match=r"b\.png: image file not found"):
        load_dataset(_cfg(table))
    with pytest.raises(DataError, match=r"row 2 label 'x' is not one of"):
        load_dataset(_cfg(table, class_names=("normal", "abnormal")))
    with pytest.raises(DataError, match=r"missing\.csv.*not found"):
        load_dataset(_cfg(tmp_path / "missing.csv"))


def test_unsupported_extension_and_empty_cell(tmp_path: Path) -> None:
    table = _write_csv(tmp_path / "t.csv", ["image", "label"], [["scan.tif", "0"], ["x.png", "1"]])
    with pytest.raises(DataError, match=r"scan\.tif: unsupported image extension"):
        load_dataset(_cfg(table))
    table = _write_csv(tmp_path / "e.csv", ["image", "label"], [["scan.png", ""]])
    with pytest.raises(DataError, match=r"e\.csv: row 2 has an empty 'label'"):
        load_dataset(_cfg(table))
