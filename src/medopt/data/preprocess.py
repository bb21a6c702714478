"""Image preprocessing in numpy: the one implementation that training, evaluation and serving all run.

Why numpy: the slim predictor and the transformer images carry no torch, yet must feed the network exactly what
training fed it; training wraps this (``medopt.data.transforms.preprocess_batch``). Steps: scale to [0,1];
separable antialiased bilinear resize with torch's (PIL's) triangle-filter weights (two BLAS matmuls);
clamp; center crop; gray to RGB; normalise. ``tests/data/test_preprocess.py`` holds it to torch's
``F.interpolate(..., antialias=True)`` on up- and down-sizing, crops and channels.
"""

from __future__ import annotations

import numpy as np

from medopt.config import PreprocessConfig
from medopt.data.types import DataError


def resize_weights(in_size: int, out_size: int) -> np.ndarray:
    """(out_size, in_size) float32 rows: torch's ``antialias=True`` bilinear weights, each row summing to 1."""
    scale = in_size / out_size
    support = scale if scale >= 1.0 else 1.0
    invscale = 1.0 / scale if scale >= 1.0 else 1.0
    weights = np.zeros((out_size, in_size), dtype=np.float64)
    for i in range(out_size):
        center = scale * (i + 0.5)
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), in_size)
        taps = np.clip(1.0 - np.abs((np.arange(lo, hi) - center + 0.5) * invscale), 0.0, None)
        total = taps.sum()
        weights[i, lo:hi] = taps / total if total > 0 else taps
    return weights.astype(np.float32)


def crop_size_of(cfg: PreprocessConfig) -> int:
    """The output side length: crop_size when cropping (default image_size), else image_size."""
    if cfg.crop == "none":
        return cfg.image_size
    size = cfg.crop_size or cfg.image_size
    if size > cfg.image_size:
        raise DataError(f"preprocess.crop_size ({size}) must be <= preprocess.image_size ({cfg.image_size})")
    return size


def _resize(x: np.ndarray, size: int) -> np.ndarray:
    """(N,C,H,W) float32 to (N,C,size,size): the separable resize as two BLAS matmuls.

    Height first, on the (small) input, so that the full-size output is written once, already in place: the resize
    is linear, so the order changes only float rounding (< 1e-6 against torch's width-first kernel).
    """
    n, c, h, w = x.shape
    if h != size:
        x = np.tensordot(resize_weights(h, size), x.reshape(n * c, h, w), axes=([1], [1]))  # (size, N*C, W)
        x = np.ascontiguousarray(x.transpose(1, 0, 2)).reshape(n, c, size, w)
    if w != size:
        x = x @ resize_weights(w, size).T
    return np.clip(x, 0.0, 1.0, out=x)


def _normalise(x: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    if cfg.normalize == "unit":
        return x
    channels = x.shape[1]
    stats = []
    for name, values in (("mean", cfg.mean), ("std", cfg.std)):
        if len(values) not in (1, channels):
            raise DataError(f"preprocess.{name} has {len(values)} values but images have {channels} channels")
        stats.append(np.asarray(values, dtype=np.float32).reshape(1, -1, 1, 1))
    return (x - stats[0]) / stats[1]


def preprocess_images(images: np.ndarray, cfg: PreprocessConfig, out_size: int) -> np.ndarray:
    """A uint8 (N,H,W,C) batch to the float32 (N,C,out_size,out_size) model input, as training computed it.

    ``out_size`` is the model's saved input size (crop size, or image_size without cropping).

    Raises:
        DataError: not a uint8 NHWC batch, a crop larger than image_size, or mean/std of the wrong length.
    """
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise DataError(f"preprocess expects uint8 (N,H,W,C) with C in 1 or 3, got {images.dtype} {images.shape}")
    size = cfg.image_size
    if out_size > size:
        raise DataError(f"model input size {out_size} is larger than preprocess.image_size {size}")
    x = np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255.0)
    if x.shape[0] == 0:
        x = np.zeros((0, x.shape[1], size, size), dtype=np.float32)
    elif x.shape[-2:] != (size, size):
        x = _resize(x, size)
    if out_size != size:
        top, left = (size - out_size) // 2, (size - out_size) // 2
        x = x[..., top : top + out_size, left : left + out_size]
    if cfg.to_rgb and x.shape[1] == 1:
        x = np.repeat(x, 3, axis=1)
    return np.ascontiguousarray(_normalise(x, cfg), dtype=np.float32)
