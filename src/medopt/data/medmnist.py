"""MedMNIST 2D npz files (any of the releases, including multi-label ChestMNIST) with their official splits."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from medopt.data.types import SPLIT_NAMES, ArraySplit, DataError, ImageDataset, Task


def _load_arrays(path: Path) -> dict[str, np.ndarray]:
    """All six MedMNIST arrays from the npz, or a DataError naming the file and the missing key."""
    if not path.is_file():
        raise DataError(f"{path}: MedMNIST npz file not found")
    wanted = [f"{s}_{kind}" for s in SPLIT_NAMES for kind in ("images", "labels")]
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = sorted(npz.files)
            arrays = {key: npz[key] for key in wanted if key in keys}
    except (OSError, ValueError, TypeError, AttributeError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{path}: not a readable npz file ({exc.__class__.__name__}: {exc})") from None
    missing = [key for key in wanted if key not in arrays]
    if missing:
        raise DataError(f"{path}: missing key(s) {missing} (has {keys})")
    return arrays


def _images(path: Path, key: str, images: np.ndarray) -> np.ndarray:
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (1, 3)):
        raise DataError(f"{path}: {key} must be (N,H,W) or (N,H,W,C) with C in {{1,3}}, got shape {images.shape}")
    if images.dtype == np.uint8:
        return images
    if images.dtype.kind in "iu" and (images.size == 0 or (images.min() >= 0 and images.max() <= 255)):
        return images.astype(np.uint8)
    raise DataError(f"{path}: {key} must hold uint8 pixels, got dtype {images.dtype}")


def _labels(path: Path, key: str, labels: np.ndarray, n: int) -> np.ndarray:
    if len(labels) != n:
        raise DataError(f"{path}: {key} has {len(labels)} labels but the matching images key has {n} images")
    if labels.dtype.kind not in "iub":
        raise DataError(f"{path}: {key} must hold integer labels, got dtype {labels.dtype}")
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim not in (1, 2) or (labels.size and labels.min() < 0):
        raise DataError(f"{path}: {key} must be non-negative (N,), (N,1) or (N,K) labels, got shape {labels.shape}")
    return labels.astype(np.int64)


def _infer_task(path: Path, labels: dict[str, np.ndarray], class_names: tuple[str, ...] | None) -> tuple[Task, int]:
    """(task, number of classes) from the label shape; a class missing from train is an error."""
    train = labels["train"]
    if train.ndim == 2:
        k = train.shape[1]
        if any(labels[s].ndim != 2 or labels[s].shape[1] != k for s in SPLIT_NAMES):
            raise DataError(f"{path}: multilabel label keys disagree on the number of classes")
        if not np.isin(np.concatenate([labels[s] for s in SPLIT_NAMES]), (0, 1)).all():
            raise DataError(f"{path}: multilabel labels (N,{k}) must be 0/1")
        absent = np.flatnonzero(train.sum(axis=0) == 0)
        task: Task = "multilabel"
    else:
        if any(labels[s].ndim != 1 for s in SPLIT_NAMES):
            raise DataError(f"{path}: label keys mix single-label and multilabel shapes")
        k = int(max(labels[s].max(initial=0) for s in SPLIT_NAMES)) + 1
        absent = np.setdiff1d(np.arange(k), train)
        task = "binary" if k == 2 else "multiclass"
    if k < 2:
        raise DataError(f"{path}: the labels define only {k} class; a classifier needs at least 2")
    if class_names is not None and len(class_names) != k:
        raise DataError(f"{path}: data.class_names has {len(class_names)} names but the labels define {k} classes")
    if len(absent):
        raise DataError(f"{path}: train_labels has no sample of class(es) {absent.tolist()}")
    return task, k


def load_medmnist(path: Path, class_names: tuple[str, ...] | None = None) -> ImageDataset:
    """Read a MedMNIST-format npz: binary, multiclass, or (N,K) 0/1 multilabel labels.

    Raises:
        DataError: missing keys, image/label count mismatch, class names that disagree with the labels, or a
            class absent from train.
    """
    arrays = _load_arrays(path)
    images = {s: _images(path, f"{s}_images", arrays[f"{s}_images"]) for s in SPLIT_NAMES}
    labels = {s: _labels(path, f"{s}_labels", arrays[f"{s}_labels"], len(images[s])) for s in SPLIT_NAMES}
    task, k = _infer_task(path, labels, class_names)
    shape = images["train"].shape[1:]
    for s in SPLIT_NAMES:
        if images[s].shape[1:] != shape:
            raise DataError(f"{path}: {s}_images have shape {images[s].shape[1:]} but train_images have {shape}")
    names = class_names or tuple(f"class_{i}" for i in range(k))
    splits = [ArraySplit(images=images[s], labels=labels[s]) for s in SPLIT_NAMES]
    return ImageDataset(*splits, class_names=names, task=task, source=f"medmnist:{path}")
