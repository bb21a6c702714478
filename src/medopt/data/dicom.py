"""DICOM to uint8: rescale to modality units, window, invert MONOCHROME1 (decoding lives in ``dicom_decode``).

Shared by the data stage and the serving codec, so a DICOM upload at inference time is turned into pixels exactly
as the training images were.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from medopt.config import DicomConfig
from medopt.data.dicom_decode import UnsupportedDicomError, decode_frame, open_dicom
from medopt.data.types import DataError

__all__ = ["UnsupportedDicomError", "minmax_to_uint8", "read_dicom", "window_to_uint8"]

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


def _gray(pixels: np.ndarray) -> np.ndarray:
    """Monochrome values as they are; RGB (any colour model, already converted) as its luminance."""
    return pixels if pixels.ndim == 2 else pixels.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def read_dicom(path_or_bytes: str | Path | bytes, window: DicomConfig) -> np.ndarray:
    """Read one DICOM image as uint8 (H, W), as a radiologist would view it; the data source and the server both
    call this, so training and serving see the same pixels.

    Steps: decode one frame (``window.frame_policy`` for multi-frame files; colour as luminance), modality rescale
    (RescaleSlope/RescaleIntercept), then the window (``window`` if set, else the file's WindowCenter/WindowWidth,
    else the min-max range), then inversion for MONOCHROME1 so bright always means dense.

    Raises:
        DataError: the file is missing, not DICOM, has no decodable pixels, or the window settings are inconsistent;
            UnsupportedDicomError (a DataError) names an unsupported transfer syntax, missing plugin or frame count.
    """
    ds, name = open_dicom(path_or_bytes)
    pixels = _gray(decode_frame(ds, window.frame_policy, name))
    slope = float(getattr(ds, "RescaleSlope", 1.0) or 1.0)
    intercept = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)
    values = pixels.astype(np.float64) * slope + intercept
    chosen = _pick_window(ds, window, name)
    out = minmax_to_uint8(values) if chosen is None else window_to_uint8(values, *chosen)
    if str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).strip() == "MONOCHROME1":
        out = 255 - out
    return out
