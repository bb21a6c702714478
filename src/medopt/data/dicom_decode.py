"""DICOM bytes to one frame of stored pixel values, for every transfer syntax a PACS export commonly carries.

Decoding goes through pydicom's pixel-data plugins (pylibjpeg + pylibjpeg-libjpeg for JPEG incl. lossless and
JPEG-LS, pylibjpeg-openjpeg for JPEG 2000, pydicom itself for native, deflated and RLE data; Pillow where present).
Colour is returned as RGB (YBR is converted, PALETTE COLOR is looked up) so that intensity handling in
``medopt.data.dicom`` only ever sees monochrome values or RGB.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from medopt.data.types import DataError

if TYPE_CHECKING:  # pragma: no cover
    from pydicom.dataset import Dataset
    from pydicom.pixels.decoders.base import Decoder

FramePolicy = Literal["first", "middle", "reject"]
RGB_LIKE = ("RGB", "YBR_ICT", "YBR_RCT")  # J2K decoders undo the ICT/RCT colour transform themselves
MONOCHROME = ("MONOCHROME1", "MONOCHROME2")


class UnsupportedDicomError(DataError):
    """A readable DICOM file this reader will not decode: its transfer syntax, colour model or frame count."""


def looks_like_dicom(blob: bytes) -> bool:
    """'DICM' after the 128-byte preamble, or a preamble-less file starting with a group 0002/0008 tag
    (little or big endian), which ``open_dicom`` then checks really parses."""
    if len(blob) >= 132 and blob[128:132] == b"DICM":
        return True
    return len(blob) >= 8 and blob[:2] in (b"\x02\x00", b"\x08\x00", b"\x00\x08")


def _forced_read(data: bytes | Path, name: str) -> "Dataset":
    """A file without preamble/'DICM': accept it only if it parses as a dataset carrying an image."""
    import pydicom

    source = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(source, force=True)
            is_image = all(tag in ds for tag in ("Rows", "Columns", "PixelData"))
    except Exception:  # noqa: BLE001 - forcing a parse of arbitrary bytes fails in many ways
        is_image = False
    if not is_image:
        raise DataError(f"{name}: not a DICOM file (no 'DICM' marker, and it does not parse as a DICOM image)")
    return ds


def open_dicom(path_or_bytes: str | Path | bytes) -> tuple["Dataset", str]:
    """Parse a DICOM file (path or bytes), with or without its preamble; returns the dataset and a display name."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    is_bytes = isinstance(path_or_bytes, (bytes, bytearray))
    name = "<DICOM bytes>" if is_bytes else str(path_or_bytes)
    data: bytes | Path = bytes(path_or_bytes) if is_bytes else Path(path_or_bytes)  # type: ignore[arg-type]
    if isinstance(data, Path) and not data.is_file():
        raise DataError(f"{name}: DICOM file not found")
    try:
        ds = pydicom.dcmread(io.BytesIO(data) if isinstance(data, bytes) else data)
    except InvalidDicomError:
        ds = _forced_read(data, name)
    except (EOFError, OSError, ValueError, KeyError, AttributeError) as exc:
        raise DataError(f"{name}: not a readable DICOM file ({exc.__class__.__name__}: {exc})") from None
    if "PixelData" not in ds:
        raise DataError(f"{name}: DICOM file has no PixelData")
    return ds, name


def transfer_syntax(ds: "Dataset") -> str:
    """The file's transfer syntax; a bare dataset (no file meta) gets the encoding it was read with."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    meta = getattr(ds, "file_meta", None)
    if meta is not None and "TransferSyntaxUID" in meta:
        return str(meta.TransferSyntaxUID)
    implicit, little = ds.original_encoding
    uid = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
    ds.file_meta = meta if meta is not None else FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid
    return str(uid)


def describe_syntax(uid: str) -> str:
    """'transfer syntax <UID> (<name>)', the way every error here names it."""
    from pydicom.uid import UID

    known = UID(uid).name
    return f"transfer syntax {uid} ({known if known != uid else 'unknown'})"


def _decoder(uid: str, name: str) -> "Decoder":
    """pydicom's decoder for ``uid``, or a clear error when there is none or its plugins are not installed."""
    from pydicom.pixels import get_decoder

    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        raise UnsupportedDicomError(f"{name}: {describe_syntax(uid)} is not supported "
                                    "(no pixel-data decoder)") from None
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies) or "no plugin"
        raise UnsupportedDicomError(f"{name}: {describe_syntax(uid)} cannot be decoded, a pixel-data plugin is "
                                    f"missing ({missing})")
    return decoder


def frame_index(frames: int, policy: FramePolicy, name: str) -> int | None:
    """Which frame to decode (None: the file has one); 'reject' refuses multi-frame files."""
    if frames <= 1:
        return None
    if policy == "reject":
        raise UnsupportedDicomError(f"{name}: multi-frame DICOM with {frames} frames is rejected "
                                    "(data.dicom.frame_policy is 'reject'; use 'first' or 'middle')")
    return 0 if policy == "first" else frames // 2


def _number_of_frames(ds: "Dataset", name: str) -> int:
    try:
        return int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        raise DataError(f"{name}: unreadable NumberOfFrames {ds.get('NumberOfFrames')!r}") from None


def _one_line(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return f"{exc.__class__.__name__}: {text[:300]}"


def _to_rgb_or_mono(pixels: np.ndarray, photometric: str, ds: "Dataset", name: str) -> np.ndarray:
    """Monochrome values as they are, palette indices through the file's LUT, YBR converted to RGB."""
    from pydicom.pixels import apply_color_lut, convert_color_space

    if photometric in MONOCHROME:
        shape_ok = pixels.ndim == 2
    elif photometric == "PALETTE COLOR":
        try:
            pixels = apply_color_lut(pixels, ds)
        except Exception as exc:  # noqa: BLE001 - missing/odd LUT descriptors raise ValueError, KeyError, ...
            raise DataError(f"{name}: unreadable PALETTE COLOR lookup table ({_one_line(exc)})") from None
        shape_ok = pixels.ndim == 3
    elif photometric in RGB_LIKE or photometric in ("YBR_FULL", "YBR_FULL_422"):
        if photometric.startswith("YBR_FULL"):  # decoders normally convert already; kept for raw outputs
            pixels = convert_color_space(pixels, photometric, "RGB")
        shape_ok = pixels.ndim == 3 and pixels.shape[-1] == 3
    else:
        raise UnsupportedDicomError(f"{name}: photometric interpretation {photometric!r} is not supported")
    if not shape_ok:
        raise DataError(f"{name}: {photometric} DICOM with unexpected pixel shape {pixels.shape}")
    return pixels


def decode_frame(ds: "Dataset", policy: FramePolicy, name: str) -> np.ndarray:
    """One frame as stored values: (H, W) monochrome, or (H, W, 3) RGB for any colour model."""
    uid = transfer_syntax(ds)
    decoder = _decoder(uid, name)
    index = frame_index(_number_of_frames(ds, name), policy, name)
    try:
        pixels, props = decoder.as_array(ds, index=index)
    except Exception as exc:  # noqa: BLE001 - plugins raise many types for corrupt or truncated pixel data
        raise DataError(f"{name}: cannot decode DICOM pixel data with {describe_syntax(uid)} "
                        f"({_one_line(exc)})") from None
    photometric = str(props.get("photometric_interpretation", ds.get("PhotometricInterpretation", ""))).strip()
    pixels = np.asarray(pixels)
    pixels = pixels.astype(pixels.dtype.newbyteorder("="), copy=False)  # big endian files decode to '>u2'
    return _to_rgb_or_mono(pixels, photometric, ds, name)


def decode_dicom(path_or_bytes: str | Path | bytes, policy: FramePolicy = "middle") -> np.ndarray:
    """Open and decode one frame (stored values or RGB): what ``read_dicom`` windows, for checks and tables."""
    ds, name = open_dicom(path_or_bytes)
    return decode_frame(ds, policy, name)
