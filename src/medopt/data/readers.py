"""Single-file image readers (PNG/JPEG, DICOM, NIfTI) and the resize/stack step that makes a list of them a batch.

Every reader returns uint8 (H,W) for grayscale or (H,W,3) for colour; every failure is a DataError naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from medopt.config import DicomConfig
from medopt.data.dicom import minmax_to_uint8, read_dicom, window_to_uint8
from medopt.data.types import DataError

ImageKind = Literal["pil", "dicom", "nifti"]
PIL_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})
DICOM_SUFFIXES = frozenset({".dcm", ".dicom", ""})
_GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})


def kind_for(path: Path) -> ImageKind:
    """The reader for a file, by extension (extension-less files are DICOM, as PACS exports often are)."""
    name = path.name.lower()
    if name.endswith(".nii") or name.endswith(".nii.gz"):
        return "nifti"
    suffix = path.suffix.lower()
    if suffix in PIL_SUFFIXES:
        return "pil"
    if suffix in DICOM_SUFFIXES:
        return "dicom"
    raise DataError(f"{path}: unsupported image extension '{suffix}' (use PNG, JPEG, DICOM or NIfTI)")


def _pil_to_uint8(img: object, path: Path) -> np.ndarray:
    """A decoded PIL image as uint8 gray (H,W) or RGB (H,W,3); 16-bit and float images are range-scaled."""
    mode = img.mode  # type: ignore[attr-defined]
    if mode in ("1", "L"):
        return np.asarray(img.convert("L"))  # type: ignore[attr-defined]
    if mode == "LA":
        return np.asarray(img.convert("L"))  # type: ignore[attr-defined]
    if mode.startswith("I;16"):
        return np.rint(np.asarray(img, dtype=np.float64) / 257.0).astype(np.uint8)
    if mode in ("I", "F"):
        return minmax_to_uint8(np.asarray(img, dtype=np.float64))
    if mode in ("RGB", "RGBA", "P", "CMYK", "YCbCr", "PA", "LAB", "HSV"):
        return np.asarray(img.convert("RGB"))  # type: ignore[attr-defined]
    raise DataError(f"{path}: unsupported PIL image mode '{mode}'")


def read_pil(path: Path) -> np.ndarray:
    """Decode a PNG/JPEG fully (so truncated files fail here, not later); RGB with equal channels counts as gray."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            image = _pil_to_uint8(img, path)
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: unreadable or corrupt image ({exc.__class__.__name__}: {exc})") from None
    if image.ndim == 3 and (image == image[:, :, :1]).all():
        return np.ascontiguousarray(image[:, :, 0])  # gray content saved as RGB (common for X-ray JPEGs)
    return image


def read_nifti(path: Path, window: DicomConfig) -> np.ndarray:
    """The middle slice (last axis) of a 3-D NIfTI volume, or a 2-D image, as uint8 (H,W).

    Intensities use ``window`` when both its center and width are set (CT in HU), else the slice's min-max range.
    """
    import nibabel as nib

    if not path.is_file():
        raise DataError(f"{path}: NIfTI file not found")
    try:
        data = np.asarray(nib.load(str(path)).get_fdata(dtype=np.float32))
    except Exception as exc:  # nibabel raises ImageFileError, OSError, EOFError, zlib errors...
        raise DataError(f"{path}: unreadable NIfTI file ({exc.__class__.__name__}: {exc})") from None
    data = np.squeeze(data)
    if data.ndim == 3:
        data = data[:, :, data.shape[2] // 2]
    if data.ndim != 2:
        raise DataError(f"{path}: expected a 2-D or 3-D NIfTI image, got shape {data.shape}")
    if not np.isfinite(data).all():
        raise DataError(f"{path}: NIfTI slice contains NaN or infinite values")
    if (window.window_center is None) != (window.window_width is None):
        raise DataError(f"{path}: set both data.dicom.window_center and data.dicom.window_width, or neither")
    if window.window_center is not None and window.window_width is not None:
        return window_to_uint8(data, window.window_center, window.window_width)
    return minmax_to_uint8(data)


def read_image(path: Path, window: DicomConfig, kind: ImageKind | None = None) -> np.ndarray:
    """Read one image with the reader ``kind`` (default: chosen by extension)."""
    kind = kind or kind_for(path)
    if kind == "pil":
        return read_pil(path)
    if kind == "dicom":
        return read_dicom(path, window)
    return read_nifti(path, window)


def _is_gray(image: np.ndarray) -> bool:
    return image.ndim == 2


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    """Resize to (size, size) with PIL's antialiased bilinear filter; untouched when already that size."""
    from PIL import Image

    if image.shape[0] == size and image.shape[1] == size:
        return image
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR))


def _to_rgb(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 3 else np.repeat(image[:, :, None], 3, axis=2)


def stack_images(images: list[np.ndarray], size: int) -> np.ndarray:
    """Stack mixed-size images into one uint8 batch: (N,size,size) if all are gray, else (N,size,size,3)."""
    if not images:
        raise DataError("no images to stack")
    all_gray = all(_is_gray(im) for im in images)
    batch = [_resize(im if all_gray else _to_rgb(im), size) for im in images]
    return np.stack(batch).astype(np.uint8, copy=False)
