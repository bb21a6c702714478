"""Factories that write tiny PNG/JPEG, DICOM, NIfTI and npz files for the data-stage tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture
def write_image() -> Callable[..., Path]:
    """write_image(path, array) -> path: PNG or JPEG by suffix (uint8 (H,W) gray or (H,W,3) RGB)."""
    from PIL import Image

    def write(path: Path, array: np.ndarray) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)
        return path

    return write


@pytest.fixture
def write_dicom() -> Callable[..., Path]:
    """write_dicom(path, pixels, photometric=..., slope=..., intercept=..., center=..., width=...) -> path."""
    from dicom_files import write_dicom

    return write_dicom


@pytest.fixture
def write_nifti() -> Callable[..., Path]:
    """write_nifti(path, volume) -> path (.nii or .nii.gz), identity affine, float32."""
    import nibabel as nib

    def write(path: Path, volume: np.ndarray) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(np.asarray(volume, dtype=np.float32), np.eye(4)), str(path))
        return path

    return write


@pytest.fixture
def medmnist_npz(tmp_path: Path) -> Callable[..., Path]:
    """medmnist_npz(name, labels_by_split, size=8, drop=(), **overrides) -> path of a MedMNIST-format npz."""

    def write(name: str, labels: dict[str, np.ndarray], size: int = 8, drop: tuple[str, ...] = (),
              **overrides: np.ndarray) -> Path:
        rng = np.random.default_rng(0)
        arrays: dict[str, np.ndarray] = {}
        for split, y in labels.items():
            arrays[f"{split}_images"] = rng.integers(0, 256, size=(len(y), size, size), dtype=np.uint8)
            arrays[f"{split}_labels"] = np.asarray(y)
        arrays.update(overrides)
        for key in drop:
            arrays.pop(key)
        path = tmp_path / name
        np.savez(path, **arrays)
        return path

    return write
