"""A JSON-ready summary of a dataset: what `medopt data inspect` shows and the data manifest records."""

from __future__ import annotations

from typing import Any

import numpy as np

from medopt.data.types import SPLIT_NAMES, ArraySplit, ImageDataset

_CHUNK = 4096


def _pixel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel pixel mean and std in [0,1] units, accumulated in chunks to bound memory."""
    flat = images.reshape(len(images), -1, 1 if images.ndim == 3 else images.shape[-1])
    channels = flat.shape[-1]
    total = np.zeros(channels)
    total_sq = np.zeros(channels)
    for start in range(0, len(flat), _CHUNK):
        chunk = flat[start : start + _CHUNK].astype(np.float64) / 255.0
        total += chunk.sum(axis=(0, 1))
        total_sq += np.square(chunk).sum(axis=(0, 1))
    count = max(flat.shape[0] * flat.shape[1], 1)
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    return [round(float(m), 6) for m in mean], [round(float(s), 6) for s in std]


def _per_class(split: ArraySplit, class_names: tuple[str, ...]) -> dict[str, int]:
    """Samples per class (positives per class for multilabel)."""
    k = len(class_names)
    counts = split.labels.sum(axis=0) if split.labels.ndim == 2 else np.bincount(split.labels, minlength=k)
    return {name: int(counts[i]) for i, name in enumerate(class_names)}


def describe_dataset(ds: ImageDataset) -> dict[str, Any]:
    """Counts per class and split, image geometry, task and per-split pixel mean/std (JSON-serializable)."""
    splits: dict[str, Any] = {}
    for name in SPLIT_NAMES:
        split: ArraySplit = getattr(ds, name)
        mean, std = _pixel_stats(split.images)
        splits[name] = {
            "count": len(split),
            "per_class": _per_class(split, ds.class_names),
            "pixel_mean": mean,
            "pixel_std": std,
            "has_groups": split.groups is not None,
            "has_sites": split.sites is not None,
        }
    return {
        "source": ds.source,
        "task": ds.task,
        "class_names": list(ds.class_names),
        "num_classes": ds.num_classes,
        "image_size": list(ds.image_size),
        "channels": ds.channels,
        "dtype": str(ds.train.images.dtype),
        "splits": splits,
    }
