"""Batched preprocessing (hand-computed values) and augmentation (identity, flips, determinism)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medopt.config import AugmentConfig, PreprocessConfig
from medopt.data import DataError, augment_batch, preprocess_batch


def test_single_gray_image_scaled_to_unit() -> None:
    img = np.tile(np.array([0, 51, 102, 255], dtype=np.uint8), (8, 2))
    x = preprocess_batch(img, PreprocessConfig(image_size=8))
    assert x.shape == (1, 1, 8, 8) and x.dtype == torch.float32
    torch.testing.assert_close(x[0, 0, 3], torch.tensor([0.0, 0.2, 0.4, 1.0] * 2))


def test_batch_layouts() -> None:
    cfg = PreprocessConfig(image_size=8)
    assert preprocess_batch(np.zeros((5, 8, 8), np.uint8), cfg).shape == (5, 1, 8, 8)
    assert preprocess_batch(np.zeros((5, 8, 8, 1), np.uint8), cfg).shape == (5, 1, 8, 8)
    assert preprocess_batch(np.zeros((5, 8, 8, 3), np.uint8), cfg).shape == (5, 3, 8, 8)
    assert preprocess_batch(np.zeros((8, 8, 3), np.uint8), cfg).shape == (1, 3, 8, 8)
    assert preprocess_batch(np.zeros((0, 8, 8), np.uint8), cfg).shape == (0, 1, 8, 8)


def test_antialiased_downsize_by_hand() -> None:
    # rows are [0, 0, 1, 1] repeated; halving uses a triangle filter of support 2 input pixels. Output pixel 0
    # (centre at input 0.5) weighs pixels 0, 1, 2 by 0.75, 0.75, 0.25 (pixel -1 is outside): 0.25 / 1.75 = 1/7.
    # Output pixel 1 (centre 2.5) weighs pixels 1, 2, 3, 4 by 0.25, 0.75, 0.75, 0.25: 1.5 / 2 = 3/4.
    img = np.tile(np.array([0, 0, 255, 255] * 4, np.uint8), (16, 1))
    y = preprocess_batch(img, PreprocessConfig(image_size=8))
    assert y.shape == (1, 1, 8, 8)
    torch.testing.assert_close(y[0, 0, 5, :2], torch.tensor([1 / 7, 3 / 4]), atol=1e-6, rtol=0)


def test_upsizing_stays_in_unit_range() -> None:
    img = np.tile(np.array([0, 255], np.uint8), (4, 2))
    x = preprocess_batch(img, PreprocessConfig(image_size=9))
    assert x.shape == (1, 1, 9, 9) and x.min() >= 0.0 and x.max() <= 1.0


def test_center_crop_rgb_and_meanstd() -> None:
    img = np.arange(144, dtype=np.uint8).reshape(12, 12)
    cfg = PreprocessConfig(image_size=12, crop="center", crop_size=8, to_rgb=True, normalize="meanstd",
                           mean=(0.5,), std=(0.25,))
    x = preprocess_batch(img, cfg)
    assert x.shape == (1, 3, 8, 8)
    expected = (torch.from_numpy(img[2:10, 2:10].astype(np.float32)) / 255 - 0.5) / 0.25
    for c in range(3):
        torch.testing.assert_close(x[0, c], expected)


def test_per_channel_meanstd_and_mismatch() -> None:
    img = np.full((1, 8, 8, 3), 255, np.uint8)
    cfg = PreprocessConfig(image_size=8, normalize="meanstd", mean=(0.0, 0.5, 1.0), std=(1.0, 0.5, 0.25))
    torch.testing.assert_close(preprocess_batch(img, cfg)[0, :, 0, 0], torch.tensor([1.0, 1.0, 0.0]))
    bad = PreprocessConfig(image_size=8, normalize="meanstd", mean=(0.1, 0.2), std=(1.0,))
    with pytest.raises(DataError, match="preprocess.mean has 2 values but images have 3 channels"):
        preprocess_batch(img, bad)


def test_bad_inputs() -> None:
    with pytest.raises(DataError, match="uint8"):
        preprocess_batch(np.zeros((2, 8, 8), np.float32), PreprocessConfig(image_size=8))
    with pytest.raises(DataError, match="crop_size"):
        preprocess_batch(np.zeros((2, 8, 8), np.uint8), PreprocessConfig(image_size=8, crop="center", crop_size=16))


def _batch(n: int = 32, size: int = 12) -> torch.Tensor:
    return torch.rand((n, 1, size, size), generator=torch.Generator().manual_seed(0))


def test_augment_disabled_returns_input() -> None:
    x = _batch()
    assert augment_batch(x, AugmentConfig(enabled=False), torch.Generator().manual_seed(0)) is x


def test_augment_neutral_settings_are_identity() -> None:
    cfg = AugmentConfig(enabled=True, rotation_deg=0.0, hflip=False, vflip=False, scale_min=1.0, scale_max=1.0)
    x = _batch()
    torch.testing.assert_close(augment_batch(x, cfg, torch.Generator().manual_seed(0)), x, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("flag", "dim"), [("hflip", -1), ("vflip", -2)])
def test_augment_flips_exactly(flag: str, dim: int) -> None:
    cfg = AugmentConfig(enabled=True, rotation_deg=0.0, hflip=flag == "hflip", vflip=flag == "vflip",
                        scale_min=1.0, scale_max=1.0)
    x = _batch()
    y = augment_batch(x, cfg, torch.Generator().manual_seed(0))
    flipped = [torch.allclose(y[i], x[i].flip(dim), atol=1e-5) for i in range(len(x))]
    same = [torch.allclose(y[i], x[i], atol=1e-5) for i in range(len(x))]
    assert all(f or s for f, s in zip(flipped, same))
    assert 5 < sum(flipped) < 27  # p = 0.5 over 32 samples


def test_augment_deterministic_per_generator_state() -> None:
    cfg = AugmentConfig(enabled=True, rotation_deg=30.0, vflip=True, scale_min=0.8, scale_max=1.2)
    x = _batch()
    a = augment_batch(x, cfg, torch.Generator().manual_seed(5))
    b = augment_batch(x, cfg, torch.Generator().manual_seed(5))
    c = augment_batch(x, cfg, torch.Generator().manual_seed(6))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.allclose(a, c)


def test_random_crop_shifts_within_margin() -> None:
    neutral = {"enabled": True, "rotation_deg": 0.0, "hflip": False, "scale_min": 1.0, "scale_max": 1.0}
    x = torch.zeros((16, 1, 8, 8))
    x[:, :, 3:5, 3:5] = 1.0  # a bright 2x2 square at the centre
    crop = PreprocessConfig(image_size=12, crop="random", crop_size=8)
    y = augment_batch(x, AugmentConfig(**neutral), torch.Generator().manual_seed(0), crop=crop)
    moved = ~torch.isclose(y, x, atol=1e-4).flatten(1).all(dim=1)
    assert moved.sum() >= 12  # shifts are continuous in [-2, 2] px: almost every sample moves
    mass = y.flatten(1).sum(dim=1)
    torch.testing.assert_close(mass, torch.full((16,), 4.0), atol=1e-4, rtol=0)  # still fully inside the image
