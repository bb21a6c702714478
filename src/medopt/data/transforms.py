"""Batched tensor preprocessing and augmentation for training and evaluation (preprocessing itself is numpy).

Everything works on whole (N,C,H,W) batches with a handful of tensor ops, because per-sample PIL work dominates
training time on small CPUs.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from medopt.config import AugmentConfig, PreprocessConfig
from medopt.data.preprocess import crop_size_of, preprocess_images
from medopt.data.types import DataError


def _as_nhwc(images: np.ndarray) -> np.ndarray:
    """(N,H,W,C) view of a uint8 batch or single image: (H,W), (H,W,C), (N,H,W) or (N,H,W,C)."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise DataError(f"preprocess_batch expects uint8 images, got {images.dtype}")
    if images.ndim == 2:
        return images[None, :, :, None]
    if images.ndim == 3:
        return images[None] if images.shape[-1] in (1, 3) else images[..., None]
    if images.ndim == 4 and images.shape[-1] in (1, 3):
        return images
    raise DataError(f"preprocess_batch expects (H,W), (H,W,C), (N,H,W) or (N,H,W,C) with C in {{1,3}}, "
                    f"got shape {images.shape}")


def preprocess_batch(images: np.ndarray, cfg: PreprocessConfig) -> torch.Tensor:
    """uint8 images to a float32 (N,C,H,W) model input (``medopt.data.preprocess``, the one implementation).

    Steps: scale to [0,1]; bilinear antialiased resize to image_size when different; center crop to crop_size when
    crop is "center" or "random" (random crops happen in augment_batch); gray to 3 channels when to_rgb; normalize.
    """
    return torch.from_numpy(preprocess_images(_as_nhwc(images), cfg, crop_size_of(cfg)))


def _affine_params(n: int, cfg: AugmentConfig, gen: torch.Generator, shift: float) -> torch.Tensor:
    """Per-sample (N,2,3) sampling matrices: rotation, flips, isotropic scale, translation (normalized units)."""
    u = torch.rand((n, 6), generator=gen, dtype=torch.float64)
    angle = (u[:, 0] * 2 - 1) * math.radians(cfg.rotation_deg)
    scale = cfg.scale_min + u[:, 1] * (cfg.scale_max - cfg.scale_min)
    fx = torch.where((u[:, 2] < 0.5) & cfg.hflip, -1.0, 1.0).to(torch.float64)
    fy = torch.where((u[:, 3] < 0.5) & cfg.vflip, -1.0, 1.0).to(torch.float64)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.zeros((n, 2, 3), dtype=torch.float64)
    theta[:, 0, 0], theta[:, 0, 1] = cos * fx, -sin * fy
    theta[:, 1, 0], theta[:, 1, 1] = sin * fx, cos * fy
    theta[:, 0, 2] = (u[:, 4] * 2 - 1) * shift
    theta[:, 1, 2] = (u[:, 5] * 2 - 1) * shift
    return theta


def augment_batch(
    x: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator, crop: PreprocessConfig | None = None
) -> torch.Tensor:
    """Randomly rotate, flip and scale each sample of an (N,C,H,W) batch in one affine_grid/grid_sample call.

    When ``crop`` asks for random crops, each sample is also shifted by up to the margin between image_size and
    crop_size, which is what a random crop of the resized image would do. Areas sampled from outside the image are
    zero. Returns ``x`` itself when augmentation is disabled; the same generator state gives the same output.
    """
    if not cfg.enabled or x.shape[0] == 0:
        return x
    if x.ndim != 4:
        raise DataError(f"augment_batch expects an (N,C,H,W) batch, got shape {tuple(x.shape)}")
    shift = 0.0
    if crop is not None and crop.crop == "random":
        size = crop_size_of(crop)
        shift = (crop.image_size - size) / size
    theta = _affine_params(x.shape[0], cfg, generator, shift).to(device=x.device, dtype=x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
