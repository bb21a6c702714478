"""DICOM to uint8: rescale to modality units, window, invert MONOCHROME1.

Shared by the data stage and the serving codec, so a DICOM upload at inference time is turned into pixels exactly
as the training images were.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np

from medopt.config import DicomConfig
from medopt.data.types import DataError

logger = logging.getLogger(__name__)


def _first(value: object) -> float:
    """A DICOM tag value as a float; multi-valued tags (several windows) use their first value."""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = value[0]  # type: ignore[index]
    return float(value)  # type: ignore[arg-type]


def window_to_uint8(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """Map [center - width/2, center + width/2] linearly onto [0, 255], clipping outside it."""
    if width <= 0:
        raise DataError(f"DICOM window width must be > 0, got {width}")
    low = center - width / 2.0
    scaled = (values.astype(np.float64) - low) / width
    return np.rint(np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.uint8)


def minmax_to_uint8(values: np.ndarray) -> np.ndarray:
    """Stretch the value range onto [0, 255]; a constant image becomes all zeros."""
    values = values.astype(np.float64)
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.rint((values - low) / (high - low) * 255.0).astype(np.uint8)


def _pick_window(ds: object, window: DicomConfig, name: str) -> tuple[float, float] | None:
    """Config window first, then the file's own WindowCenter/WindowWidth, else None (min-max)."""
    center, width = window.window_center, window.window_width
    if (center is None) != (width is None):
        raise DataError(f"{name}: set both data.dicom.window_center and data.dicom.window_width, or neither")
    if center is not None and width is not None:
        return float(center), float(width)
    tag_c, tag_w = getattr(ds, "WindowCenter", None), getattr(ds, "WindowWidth", None)
    if tag_c is None or tag_w is None:
        return None
    try:
        file_center, file_width = _first(tag_c), _first(tag_w)
    except (TypeError, ValueError, IndexError):
        logger.warning("%s: unreadable WindowCenter/WindowWidth tags; using min-max", name)
        return None
    return (file_center, file_width) if file_width > 0 else None


def _gray_pixels(ds: object, name: str) -> np.ndarray:
    """The stored pixels as one 2-D frame: middle frame of a multi-frame file, luminance of a colour one."""
    try:
        pixels = np.asarray(ds.pixel_array)  # type: ignore[attr-defined]
    except Exception as exc:  # pydicom raises many types for missing/compressed/truncated pixel data
        raise DataError(f"{name}: cannot decode DICOM pixel data ({exc.__class__.__name__}: {exc})") from None
    samples = int(getattr(ds, "SamplesPerPixel", 1))
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if frames > 1:
        pixels = pixels[pixels.shape[0] // 2]
    if samples == 3:
        if pixels.ndim != 3 or pixels.shape[-1] != 3:
            raise DataError(f"{name}: colour DICOM with unexpected pixel shape {pixels.shape}")
        pixels = pixels.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    if pixels.ndim != 2:
        raise DataError(f"{name}: expected a 2-D DICOM image, got pixel shape {pixels.shape}")
    return pixels


def read_dicom(path_or_bytes: str | Path | bytes, window: DicomConfig) -> np.ndarray:
    """Read one DICOM image as uint8 (H, W), as a radiologist would view it.

    Steps: modality rescale (RescaleSlope/RescaleIntercept), then the window (``window`` if set, else the file's
    WindowCenter/WindowWidth, else the min-max range), then inversion for MONOCHROME1 so bright always means dense.

    Raises:
        DataError: the file is missing, not DICOM, has no decodable pixels, or the window settings are inconsistent.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    is_bytes = isinstance(path_or_bytes, (bytes, bytearray))
    name = "<DICOM bytes>" if is_bytes else str(path_or_bytes)
    source = io.BytesIO(path_or_bytes) if is_bytes else Path(path_or_bytes)
    if not is_bytes and not Path(path_or_bytes).is_file():
        raise DataError(f"{name}: DICOM file not found")
    try:
        ds = pydicom.dcmread(source)
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, AttributeError) as exc:
        raise DataError(f"{name}: not a readable DICOM file ({exc.__class__.__name__}: {exc})") from None
    if "PixelData" not in ds:
        raise DataError(f"{name}: DICOM file has no PixelData")
    pixels = _gray_pixels(ds, name)
    slope = float(getattr(ds, "RescaleSlope", 1.0) or 1.0)
    intercept = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)
    values = pixels.astype(np.float64) * slope + intercept
    chosen = _pick_window(ds, window, name)
    out = minmax_to_uint8(values) if chosen is None else window_to_uint8(values, *chosen)
    if str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).strip() == "MONOCHROME1":
        out = 255 - out
    return out
