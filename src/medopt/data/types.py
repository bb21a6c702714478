"""The in-memory dataset contract every stage codes against: uint8 images plus int64 labels, split three ways.

Validation lives here so that a malformed dataset fails where it is built, not epochs later inside a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from medopt.errors import MedoptError

Task = Literal["binary", "multiclass", "multilabel"]
TASKS: tuple[str, ...] = get_args(Task)
SPLIT_NAMES: tuple[str, str, str] = ("train", "val", "test")


class DataError(MedoptError, ValueError):
    """Any problem with input data; the message names the file, key or field that was wrong."""


def check_task(task: str) -> None:
    """Raise a ValueError naming the valid tasks when ``task`` is not one of them."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}; got {task!r}")


def _check_images(images: np.ndarray) -> None:
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        raise DataError(f"ArraySplit.images must be a uint8 numpy array, got {getattr(images, 'dtype', type(images))}")
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (1, 3)):
        raise DataError(f"ArraySplit.images must be (N,H,W) or (N,H,W,C) with C in {{1,3}}, got shape {images.shape}")


def _as_int64_labels(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.dtype.kind == "f" and labels.size and not np.all(np.equal(np.mod(labels, 1), 0)):
        raise DataError("ArraySplit.labels must be integers, got non-integer floats")
    if labels.dtype.kind not in "biuf":
        raise DataError(f"ArraySplit.labels must be integers, got dtype {labels.dtype}")
    if labels.ndim not in (1, 2):
        raise DataError(f"ArraySplit.labels must be (N,) or (N,K), got shape {labels.shape}")
    return labels.astype(np.int64, copy=False)


@dataclass(frozen=True, eq=False)
class ArraySplit:
    """One split: images (N,H,W) or (N,H,W,C) uint8, labels (N,) or (N,K) int64, optional patient and site ids."""

    images: np.ndarray
    labels: np.ndarray
    groups: np.ndarray | None = None
    sites: np.ndarray | None = None

    def __post_init__(self) -> None:
        _check_images(self.images)
        object.__setattr__(self, "labels", _as_int64_labels(self.labels))
        n = len(self.images)
        if len(self.labels) != n:
            raise DataError(f"ArraySplit has {n} images but {len(self.labels)} labels")
        for name in ("groups", "sites"):
            value = getattr(self, name)
            if value is not None:
                value = np.asarray(value)
                object.__setattr__(self, name, value)
                if value.shape != (n,):
                    raise DataError(f"ArraySplit.{name} must have shape ({n},), got {value.shape}")

    def __len__(self) -> int:
        return int(len(self.images))


def _check_labels(name: str, split: ArraySplit, task: str, num_classes: int) -> None:
    labels = split.labels
    if task == "multilabel":
        if labels.ndim != 2 or labels.shape[1] != num_classes:
            raise DataError(f"{name} labels must be (N,{num_classes}) for a multilabel task, got {labels.shape}")
        if labels.size and not np.isin(labels, (0, 1)).all():
            raise DataError(f"{name} multilabel labels must be 0/1")
        return
    if labels.ndim != 1:
        raise DataError(f"{name} labels must be (N,) for a {task} task, got {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"{name} labels must lie in [0, {num_classes}), got [{labels.min()}, {labels.max()}]")


@dataclass(frozen=True, eq=False)
class ImageDataset:
    """A whole dataset: the three splits, the class names and the task they define, and where it came from."""

    train: ArraySplit
    val: ArraySplit
    test: ArraySplit
    class_names: tuple[str, ...]
    task: Task
    source: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))
        if self.task not in TASKS:
            raise DataError(f"ImageDataset.task must be one of {TASKS}, got {self.task!r}")
        if len(self.class_names) < 2:
            raise DataError(f"ImageDataset needs at least 2 class names, got {self.class_names}")
        if self.task == "binary" and len(self.class_names) != 2:
            raise DataError(f"a binary task has exactly 2 classes, got {len(self.class_names)}")
        shape = self.train.images.shape[1:]
        for name in SPLIT_NAMES:
            split = getattr(self, name)
            if split.images.shape[1:] != shape:
                raise DataError(f"{name} images have shape {split.images.shape[1:]}, train has {shape}")
            _check_labels(name, split, self.task, len(self.class_names))

    @property
    def num_classes(self) -> int:
        """Number of classes (label columns for multilabel)."""
        return len(self.class_names)

    @property
    def channels(self) -> int:
        """1 for grayscale (N,H,W) or (N,H,W,1), 3 for RGB."""
        images = self.train.images
        return 1 if images.ndim == 3 else int(images.shape[-1])

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of every image."""
        return int(self.train.images.shape[1]), int(self.train.images.shape[2])

    def splits(self) -> dict[str, ArraySplit]:
        """The three splits by name, in train/val/test order."""
        return {name: getattr(self, name) for name in SPLIT_NAMES}


@dataclass(frozen=True, eq=False)
class LabeledPool:
    """Images of a source without a predefined split, before it is split into train/val/test."""

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    source: str
    groups: np.ndarray | None = None
    sites: np.ndarray | None = None
