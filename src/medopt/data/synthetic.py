"""Deterministic lesion-like images: a textured "body" with 1-3 blobs whose size and brightness grow with the class.

Classes overlap on purpose (each class draws its lesion severity from a range that overlaps its neighbours'), so a
small CNN learns them well above chance within a few epochs but cannot reach 100%: a realistic stand-in for tests
and the quick start that needs no download.
"""

from __future__ import annotations

import numpy as np

from medopt.config import SplitConfig, SyntheticConfig
from medopt.data.splits import stratified_split
from medopt.data.types import ArraySplit, ImageDataset

CHUNK = 64
MAX_BLOBS = 3
SEVERITY_JITTER = (-0.2, 1.2)  # class k draws severity from (k + U(lo, hi)) / K: neighbours overlap by 0.4 / K
_BG_TINT = np.array([0.95, 0.80, 0.90])
_BLOB_TINT = np.array([0.55, 0.25, 0.75])


def _draw_params(n: int, k: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """All per-sample random parameters, drawn up front so the output does not depend on chunking."""
    labels = rng.permutation(np.arange(n) % k).astype(np.int64)
    severity = np.clip((labels + rng.uniform(*SEVERITY_JITTER, size=n)) / k, 0.0, 1.0)
    count = rng.integers(1, MAX_BLOBS + 1, size=n)
    present = np.arange(MAX_BLOBS)[None, :] < count[:, None]
    return {
        "labels": labels,
        "radius": (0.05 + 0.12 * severity)[:, None] * rng.uniform(0.85, 1.15, size=(n, MAX_BLOBS)),
        "amp": (0.15 + 0.35 * severity)[:, None] * present,
        "cx": rng.uniform(0.25, 0.75, size=(n, MAX_BLOBS)),
        "cy": rng.uniform(0.25, 0.75, size=(n, MAX_BLOBS)),
        "freq": rng.uniform(1.0, 4.0, size=(n, 3, 2)) * rng.choice([-1.0, 1.0], size=(n, 3, 2)),
        "phase": rng.uniform(0.0, 2 * np.pi, size=(n, 3)),
        "body": rng.uniform(0.30, 0.42, size=(n, 2)),
    }


def _background(p: dict[str, np.ndarray], sl: slice, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """A soft elliptical body plus low-frequency sinusoidal texture, (n,S,S) in [0,1] units."""
    ry, rx = p["body"][sl, 0, None, None], p["body"][sl, 1, None, None]
    ellipse = ((yy - 0.5) / ry) ** 2 + ((xx - 0.5) / rx) ** 2
    bg = 0.15 + 0.20 / (1.0 + np.exp(6.0 * (ellipse - 1.0)))
    for w in range(3):
        fy, fx = p["freq"][sl, w, 0, None, None], p["freq"][sl, w, 1, None, None]
        bg = bg + 0.04 * np.sin(2 * np.pi * (fy * yy + fx * xx) + p["phase"][sl, w, None, None])
    return bg


def _blobs(p: dict[str, np.ndarray], sl: slice, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Sum of Gaussian blobs, (n,S,S)."""
    out = np.zeros((sl.stop - sl.start,) + yy.shape, dtype=np.float64)
    for b in range(MAX_BLOBS):
        d2 = (yy - p["cy"][sl, b, None, None]) ** 2 + (xx - p["cx"][sl, b, None, None]) ** 2
        out += p["amp"][sl, b, None, None] * np.exp(-d2 / (2 * p["radius"][sl, b, None, None] ** 2))
    return out


def synthetic_images(cfg: SyntheticConfig, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N,S,S) or (N,S,S,3), labels int64 (N,)), balanced classes, identical for the same seed."""
    rng = np.random.default_rng(seed)
    n, size = cfg.num_samples, cfg.image_size
    p = _draw_params(n, cfg.num_classes, rng)
    yy, xx = (np.mgrid[0:size, 0:size].astype(np.float64) + 0.5) / size
    shape = (n, size, size) if cfg.channels == 1 else (n, size, size, 3)
    images = np.empty(shape, dtype=np.uint8)
    for start in range(0, n, CHUNK):
        sl = slice(start, min(start + CHUNK, n))
        bg, blobs = _background(p, sl, yy, xx), _blobs(p, sl, yy, xx)
        if cfg.channels == 3:
            img = bg[..., None] * _BG_TINT + blobs[..., None] * _BLOB_TINT
        else:
            img = bg + blobs
        img = img + cfg.noise * rng.standard_normal(img.shape)
        images[sl] = np.rint(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)
    return images, p["labels"]


def synthetic_dataset(cfg: SyntheticConfig, seed: int, split: SplitConfig | None = None) -> ImageDataset:
    """A full synthetic ImageDataset, split stratified (80/10/10 unless ``split`` says otherwise)."""
    images, labels = synthetic_images(cfg, seed)
    parts = stratified_split(labels, split or SplitConfig(), seed)
    splits = [ArraySplit(images=images[idx], labels=labels[idx]) for idx in parts]
    task = "binary" if cfg.num_classes == 2 else "multiclass"
    source = (f"synthetic:n={cfg.num_samples},size={cfg.image_size},classes={cfg.num_classes},"
              f"channels={cfg.channels},noise={cfg.noise:g},seed={seed}")
    names = tuple(f"class_{k}" for k in range(cfg.num_classes))
    return ImageDataset(*splits, class_names=names, task=task, source=source)
