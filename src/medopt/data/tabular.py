"""CSV-indexed sources ("csv", "dicom", "nifti"): one row per image with its label and optional patient/site ids."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from medopt.config import DataConfig
from medopt.data.readers import ImageKind, read_image, stack_images
from medopt.data.types import DataError, LabeledPool

_KIND_BY_SOURCE: dict[str, ImageKind | None] = {"csv": None, "dicom": "dicom", "nifti": "nifti"}


def _read_rows(path: Path, columns: list[str]) -> list[dict[str, str]]:
    """The CSV's rows as dicts, after checking that every needed column exists."""
    if not path.is_file():
        raise DataError(f"{path}: label CSV not found (data.path)")
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = list(reader.fieldnames or [])
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: unreadable CSV ({exc.__class__.__name__}: {exc})") from None
    for column in columns:
        if column not in header:
            raise DataError(f"{path}: column '{column}' not found (columns: {header})")
    if not rows:
        raise DataError(f"{path}: CSV has a header but no rows")
    return rows


def _cell(path: Path, row_no: int, row: dict[str, str], column: str) -> str:
    value = (row.get(column) or "").strip()
    if not value:
        raise DataError(f"{path}: row {row_no} has an empty '{column}' value")
    return value


def _parse_labels(
    path: Path, raw: list[str], class_names: tuple[str, ...] | None
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Labels as class indices: names looked up in class_names, or integers; unnamed string labels sort to ids."""
    if class_names is not None:
        lookup = {name: i for i, name in enumerate(class_names)}
        out = []
        for row_no, value in enumerate(raw, start=2):
            if value in lookup:
                out.append(lookup[value])
            elif value.lstrip("-").isdigit() and 0 <= int(value) < len(class_names):
                out.append(int(value))
            else:
                raise DataError(f"{path}: row {row_no} label '{value}' is not one of data.class_names {class_names}")
        return np.asarray(out, dtype=np.int64), class_names
    if all(v.lstrip("-").isdigit() for v in raw):
        ints = np.asarray([int(v) for v in raw], dtype=np.int64)
        if ints.min() < 0:
            raise DataError(f"{path}: integer labels must be >= 0, found {ints.min()}")
        return ints, tuple(f"class_{k}" for k in range(int(ints.max()) + 1))
    names = tuple(sorted(set(raw)))
    lookup = {name: i for i, name in enumerate(names)}
    return np.asarray([lookup[v] for v in raw], dtype=np.int64), names


def _image_path(root: Path, value: str) -> Path:
    p = Path(value)
    return p if p.is_absolute() else root / p


def load_table(cfg: DataConfig) -> LabeledPool:
    """Read the images a label CSV points to (PNG/JPEG/DICOM/NIfTI by extension for "csv"; all DICOM for
    "dicom"; all NIfTI for "nifti"), resized to preprocess.image_size so they stack.

    Raises:
        DataError: missing CSV or column, empty cells, unknown labels, or a missing/unreadable image (named).
    """
    path = Path(str(cfg.path))
    optional = [c for c in (cfg.group_column, cfg.site_column) if c]
    rows = _read_rows(path, [cfg.image_column, cfg.label_column, *optional])
    root = Path(cfg.image_root) if cfg.image_root else path.parent
    kind = _KIND_BY_SOURCE[cfg.source]
    files = [_image_path(root, _cell(path, i, r, cfg.image_column)) for i, r in enumerate(rows, start=2)]
    raw_labels = [_cell(path, i, r, cfg.label_column) for i, r in enumerate(rows, start=2)]
    labels, names = _parse_labels(path, raw_labels, cfg.class_names)
    extra: dict[str, np.ndarray | None] = {"groups": None, "sites": None}
    for key, column in (("groups", cfg.group_column), ("sites", cfg.site_column)):
        if column:
            extra[key] = np.asarray([_cell(path, i, r, column) for i, r in enumerate(rows, start=2)], dtype=str)
    images = [read_image(f, cfg.dicom, kind) for f in files]
    return LabeledPool(
        images=stack_images(images, cfg.preprocess.image_size),
        labels=labels,
        class_names=names,
        source=f"{cfg.source}:{path}",
        **extra,
    )
