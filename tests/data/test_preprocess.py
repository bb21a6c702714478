"""The numpy preprocessing (training, evaluation and the torch-free serving images) equals torch's antialiased resize."""

from __future__ import annotations

import numpy as np
import pytest

from medopt.config import PreprocessConfig
import torch
import torch.nn.functional as F

from medopt.data.preprocess import crop_size_of, preprocess_images, resize_weights
from medopt.data.transforms import preprocess_batch
from medopt.data.types import DataError

RNG = np.random.default_rng(0)
CASES = {  # (N, H, W, C), preprocess
    "same-size-crop": ((3, 20, 20, 1), dict(image_size=20, crop="center", crop_size=16, normalize="meanstd",
                                            mean=[0.5], std=[0.25])),
    "downsize-unit": ((2, 37, 23, 1), dict(image_size=16, crop="none", normalize="unit")),
    "upsize-rgb": ((2, 7, 9, 3), dict(image_size=32, crop="center", crop_size=28, normalize="meanstd")),
    "gray-to-rgb": ((2, 100, 64, 1), dict(image_size=24, crop="center", crop_size=20, to_rgb=True,
                                          normalize="meanstd")),
    "wide-strip": ((1, 5, 200, 3), dict(image_size=17, crop="none", normalize="meanstd")),
    "empty": ((0, 20, 20, 1), dict(image_size=16, crop="none", normalize="unit")),
}


def _torch_reference(images: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """The same steps with torch's F.interpolate(antialias=True): what training ran before it used the numpy code."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    size = cfg.image_size
    if x.shape[0] == 0:
        x = x.new_zeros((0, x.shape[1], size, size))
    elif x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
    out = crop_size_of(cfg)
    top = (size - out) // 2
    x = x[..., top:top + out, top:top + out]
    if cfg.to_rgb and x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if cfg.normalize != "unit":
        c = x.shape[1]
        mean = torch.tensor(cfg.mean if len(cfg.mean) == c else cfg.mean * c).reshape(1, -1, 1, 1)
        std = torch.tensor(cfg.std if len(cfg.std) == c else cfg.std * c).reshape(1, -1, 1, 1)
        x = (x - mean) / std
    return x.contiguous().numpy()


@pytest.mark.parametrize("case", CASES)
def test_matches_torch_preprocess_batch(case: str) -> None:
    shape, settings = CASES[case]
    cfg = PreprocessConfig(**settings)
    images = RNG.integers(0, 256, shape, dtype=np.uint8)
    expected = _torch_reference(images, cfg)
    got = preprocess_images(images, cfg, crop_size_of(cfg))
    assert torch.equal(preprocess_batch(images, cfg), torch.from_numpy(got))
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_resize_weights_are_normalised_triangles() -> None:
    w = resize_weights(37, 16)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-6)
    assert (w >= 0).all() and (np.count_nonzero(w, axis=1) > 2).all()  # downsizing spreads over > 2 taps
    np.testing.assert_array_equal(resize_weights(8, 8), np.eye(8, dtype=np.float32))


def test_rejects_bad_input() -> None:
    cfg = PreprocessConfig(image_size=16, crop="none", normalize="unit")
    with pytest.raises(DataError, match="larger than preprocess.image_size"):
        preprocess_images(np.zeros((1, 16, 16, 1), np.uint8), cfg, 20)
    with pytest.raises(DataError, match="uint8"):
        preprocess_images(np.zeros((1, 16, 16, 1), np.float32), cfg, 16)
