"""Tiny DICOM files for tests (pydicom): one writer shared by the data and serving tests, and builders of every
transfer syntax / photometric interpretation the reader supports.

Compressed files are made with real encoders: pydicom's own (RLE; JPEG-LS via pyjpegls; JPEG 2000 via
pylibjpeg-openjpeg) and imagecodecs (libjpeg-turbo) for JPEG baseline, extended and lossless, encapsulated with
``pydicom.encaps.encapsulate``. ``scripts/dicom_support_table.py`` builds the same cases for the support table.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom import uid
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

ROWS, COLS = 32, 40  # J2K needs >= 32 px per side (6 resolutions); even width: YBR_FULL_422 pairs pixels


def _secondary_capture() -> Dataset:
    """An empty Secondary Capture dataset with explicit-VR-little-endian file meta and a fresh instance UID."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    return ds


def write_dicom(path: Path, pixels: np.ndarray, photometric: str = "MONOCHROME2", slope: float | None = None,
                intercept: float | None = None, center: float | None = None, width: float | None = None) -> Path:
    """An uncompressed DICOM file of ``pixels`` (8/16-bit, signed or not), optional rescale and window tags."""
    pixels = np.asarray(pixels)
    bits = pixels.dtype.itemsize * 8
    ds = _secondary_capture()
    meta = ds.file_meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "OT"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, bits, bits - 1
    ds.PixelRepresentation = 1 if pixels.dtype.kind == "i" else 0
    if slope is not None:
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept or 0.0
    if center is not None:
        ds.WindowCenter, ds.WindowWidth = center, width
    ds.PixelData = pixels.astype(pixels.dtype.newbyteorder("<")).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


# ------------------------------------------------------------------------------------------ the support cases
@dataclass(frozen=True)
class Case:
    """One file to build: transfer syntax, colour model, bits stored, frames.

    ``tolerance``: the largest absolute error a decode may show against the source (0: lossless; the JPEG-LS
    near-lossless bound itself; for JPEG/J2K about 2x what the encoders here give, far below a wrong colour model).
    """

    syntax: str
    photometric: str = "MONOCHROME2"
    bits: int = 16
    frames: int = 1
    signed: bool = False
    planar: int = 0
    tolerance: int = 0

    @property
    def id(self) -> str:
        parts = [uid.UID(self.syntax).keyword or self.syntax, self.photometric.replace(" ", "_"), f"{self.bits}bit"]
        parts += ["signed"] if self.signed else []
        parts += [f"planar{self.planar}"] if self.planar else []
        parts += [f"{self.frames}frames"] if self.frames > 1 else []
        return "-".join(parts)

    @property
    def colour(self) -> bool:
        return self.photometric not in ("MONOCHROME1", "MONOCHROME2", "PALETTE COLOR")


U = uid
CASES: tuple[Case, ...] = (
    Case(U.ImplicitVRLittleEndian, bits=12),
    Case(U.ImplicitVRLittleEndian, "PALETTE COLOR", bits=8),
    Case(U.ExplicitVRLittleEndian, bits=8),
    Case(U.ExplicitVRLittleEndian, bits=12),
    Case(U.ExplicitVRLittleEndian, "MONOCHROME1", bits=12),
    Case(U.ExplicitVRLittleEndian, bits=16, signed=True),
    Case(U.ExplicitVRLittleEndian, bits=12, frames=3),
    Case(U.ExplicitVRLittleEndian, "RGB", bits=8),
    Case(U.ExplicitVRLittleEndian, "RGB", bits=8, planar=1),
    Case(U.ExplicitVRLittleEndian, "YBR_FULL", bits=8, tolerance=2),
    Case(U.ExplicitVRLittleEndian, "YBR_FULL_422", bits=8, tolerance=32),
    Case(U.ExplicitVRLittleEndian, "PALETTE COLOR", bits=8),
    Case(U.ExplicitVRBigEndian, bits=12),
    Case(U.ExplicitVRBigEndian, bits=16, signed=True),
    Case(U.ExplicitVRBigEndian, "RGB", bits=8, planar=1),
    Case(U.DeflatedExplicitVRLittleEndian, bits=12),
    Case(U.DeflatedExplicitVRLittleEndian, "RGB", bits=8),
    Case(U.RLELossless, bits=12),
    Case(U.RLELossless, bits=16, signed=True),
    Case(U.RLELossless, "MONOCHROME1", bits=8, frames=3),
    Case(U.RLELossless, "RGB", bits=8),
    Case(U.RLELossless, "PALETTE COLOR", bits=8),
    Case(U.JPEGBaseline8Bit, bits=8, tolerance=16),
    Case(U.JPEGBaseline8Bit, bits=8, frames=3, tolerance=16),
    Case(U.JPEGBaseline8Bit, "YBR_FULL_422", bits=8, tolerance=40),
    Case(U.JPEGBaseline8Bit, "YBR_FULL", bits=8, tolerance=32),
    Case(U.JPEGExtended12Bit, bits=12, tolerance=40),
    Case(U.JPEGLossless, bits=16),
    Case(U.JPEGLossless, bits=12, frames=3),
    Case(U.JPEGLosslessSV1, bits=8),
    Case(U.JPEGLosslessSV1, bits=12),
    Case(U.JPEGLosslessSV1, "MONOCHROME1", bits=12),
    Case(U.JPEGLosslessSV1, bits=16, signed=True),
    Case(U.JPEGLosslessSV1, "RGB", bits=8),
    Case(U.JPEGLSLossless, bits=12),
    Case(U.JPEGLSLossless, bits=16, signed=True),
    Case(U.JPEGLSLossless, "RGB", bits=8),
    Case(U.JPEGLSNearLossless, bits=12, tolerance=3),
    Case(U.JPEGLSNearLossless, bits=8, frames=3, tolerance=3),
    Case(U.JPEG2000Lossless, bits=12),
    Case(U.JPEG2000Lossless, bits=16, signed=True),
    Case(U.JPEG2000Lossless, bits=12, frames=3),
    Case(U.JPEG2000Lossless, "YBR_RCT", bits=8),
    Case(U.JPEG2000Lossless, "RGB", bits=8),
    Case(U.JPEG2000, bits=12, tolerance=40),
    Case(U.JPEG2000, "YBR_ICT", bits=8, tolerance=8),
)
# Transfer syntaxes a PACS may send that no installed plugin decodes: the reader must name them in its error.
# The last is a vendor's private syntax, which has no name in pydicom's UID dictionary.
UNSUPPORTED: tuple[str, ...] = (U.MPEG2MPML, U.HEVCMP51, U.JPEG2000MCLossless, "1.2.826.0.1.3680043.8.498.1")


def source_pixels(case: Case, seed: int = 0) -> np.ndarray:
    """Smooth content plus a little noise, spanning the case's value range: (frames, rows, cols[, 3])."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:ROWS, 0:COLS] / np.array([ROWS, COLS])[:, None, None]
    channels = 3 if case.colour else 1
    shift = np.arange(case.frames)[:, None, None, None] * 0.15 + np.arange(channels) * 0.3
    wave = 0.5 + 0.35 * np.sin(2 * np.pi * (x[None, :, :, None] + y[None, :, :, None] * 0.7 + shift))
    wave = np.clip(wave + rng.normal(0, 0.02, wave.shape), 0, 1)
    if case.photometric == "PALETTE COLOR":
        return np.rint(wave[..., 0] * 255).astype(np.uint8)
    top = (1 << case.bits) - 1
    values = np.rint(wave * top).astype(np.int64)
    if case.signed:
        values -= 1 << (case.bits - 1)
    dtype = np.uint8 if case.bits <= 8 else (np.int16 if case.signed else np.uint16)
    values = values.astype(dtype)
    return values if case.colour else values[..., 0]


def palette() -> np.ndarray:
    """A 256-entry, 16-bit RGB lookup table (a 'hot'-like ramp), shape (256, 3)."""
    i = np.arange(256, dtype=np.float64) / 255
    return np.rint(np.stack([np.clip(3 * i, 0, 1), np.clip(3 * i - 1, 0, 1), np.clip(3 * i - 2, 0, 1)], 1)
                   * 65535).astype(np.uint16)


def expected_frame(case: Case, source: np.ndarray, index: int) -> np.ndarray:
    """What decoding frame ``index`` must give: stored values, RGB for colour, the LUT's RGB for palette."""
    frame = source[index]
    return palette()[frame] if case.photometric == "PALETTE COLOR" else frame


def _dataset(case: Case, source: np.ndarray) -> Dataset:
    ds = _secondary_capture()
    meta = ds.file_meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = SecondaryCaptureImageStorage, meta.MediaStorageSOPInstanceUID, "OT"
    ds.Rows, ds.Columns = ROWS, COLS
    ds.SamplesPerPixel = 3 if case.colour else 1
    ds.PhotometricInterpretation = case.photometric
    allocated = 8 if case.bits <= 8 else 16
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = allocated, case.bits, case.bits - 1
    ds.PixelRepresentation = int(case.signed)
    if case.colour:
        ds.PlanarConfiguration = case.planar
    if case.frames > 1:
        ds.NumberOfFrames = case.frames
    if case.photometric == "PALETTE COLOR":
        lut = palette()
        for i, colour in enumerate(("Red", "Green", "Blue")):
            setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [256, 0, 16])
            setattr(ds, f"{colour}PaletteColorLookupTableData", lut[:, i].astype("<u2").tobytes())
    return ds


def _native_bytes(case: Case, source: np.ndarray, big_endian: bool) -> bytes:
    """Uncompressed pixel data: YBR converted (and 4:2:2 subsampled), planar configuration and byte order applied."""
    from pydicom.pixels import convert_color_space

    arr = source
    if case.photometric.startswith("YBR_FULL"):
        arr = convert_color_space(arr.copy(), "RGB", "YBR_FULL", per_frame=True)  # it converts in place
    if case.photometric == "YBR_FULL_422":  # per pixel pair: Y0 Y1 Cb Cr, chroma averaged over the pair
        pairs = arr.reshape(case.frames, ROWS, COLS // 2, 2, 3).astype(np.float64)
        chroma = np.rint(pairs[..., 1:].mean(axis=3)).astype(np.uint8)
        return np.concatenate([arr.reshape(pairs.shape)[..., 0], chroma], axis=-1).tobytes()
    if case.colour and case.planar == 1:
        arr = np.moveaxis(arr, -1, 1)
    return arr.astype(arr.dtype.newbyteorder(">" if big_endian else "<")).tobytes()


def _jpeg_frames(case: Case, source: np.ndarray) -> list[bytes]:
    """Each frame through libjpeg-turbo (imagecodecs): baseline, 12-bit extended, or lossless with a predictor."""
    import imagecodecs

    options: dict[str, object] = {}
    if case.syntax in (U.JPEGLossless, U.JPEGLosslessSV1):
        options = {"lossless": True, "predictor": 1 if case.syntax == U.JPEGLosslessSV1 else 6,
                   "bitspersample": case.bits}
    elif case.syntax == U.JPEGExtended12Bit:
        options = {"level": 95, "bitspersample": 12}
    else:
        options = {"level": 95}
    if case.photometric in ("YBR_FULL_422", "YBR_FULL"):
        options |= {"colorspace": "RGB", "outcolorspace": "YCBCR",
                    "subsampling": "422" if case.photometric == "YBR_FULL_422" else "444"}
    elif case.photometric == "RGB":
        options |= {"colorspace": "RGB", "outcolorspace": "RGB"}
    unsigned = source.view(np.uint16) if case.signed else source  # JPEG codes the two's-complement bit pattern
    if case.signed:
        unsigned = unsigned & ((1 << case.bits) - 1)
    return [bytes(imagecodecs.jpeg8_encode(frame, **options)) for frame in unsigned]


def _compress(ds: Dataset, case: Case, source: np.ndarray) -> None:
    """pydicom's encoders (RLE, JPEG-LS, JPEG 2000), or imagecodecs' JPEG frames encapsulated by hand."""
    from pydicom.encaps import encapsulate

    if case.syntax in (U.JPEGBaseline8Bit, U.JPEGExtended12Bit, U.JPEGLossless, U.JPEGLosslessSV1):
        ds.PixelData = encapsulate(_jpeg_frames(case, source))
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
        ds.file_meta.TransferSyntaxUID = case.syntax
        if case.tolerance:
            ds.LossyImageCompression = "01"
        return
    arr = source if case.frames > 1 else source[0]
    options: dict[str, object] = {}
    if case.syntax == U.JPEGLSNearLossless:
        options = {"jls_error": case.tolerance}
    elif case.syntax == U.JPEG2000:
        options = {"j2k_psnr": [60.0]}
    # YBR_RCT/YBR_ICT: pydicom's J2K encoder takes the RGB array and has openjpeg apply the colour transform (MCT)
    ds.compress(case.syntax, arr, generate_instance_uid=False, **options)


def build(case: Case, path: Path, seed: int = 0) -> tuple[Path, np.ndarray]:
    """Write ``case`` to ``path``; returns the path and the source pixels (frames first)."""
    source = source_pixels(case, seed)
    ds = _dataset(case, source)
    native = case.syntax in (U.ImplicitVRLittleEndian, U.ExplicitVRLittleEndian, U.ExplicitVRBigEndian,
                             U.DeflatedExplicitVRLittleEndian)
    if native:
        ds.PixelData = _native_bytes(case, source, big_endian=case.syntax == U.ExplicitVRBigEndian)
        ds["PixelData"].VR = "OB" if ds.BitsAllocated == 8 else "OW"
        ds.file_meta.TransferSyntaxUID = case.syntax
    else:
        _compress(ds, case, source)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path, source


def build_unsupported(syntax: str, path: Path) -> Path:
    """A well-formed file whose encapsulated frame claims ``syntax`` (a video or JPEG XL stream)."""
    from pydicom.encaps import encapsulate

    ds = _dataset(Case(syntax, bits=8), np.zeros((1, ROWS, COLS), np.uint8))
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + bytes(60)])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.file_meta.TransferSyntaxUID = syntax
    path.parent.mkdir(parents=True, exist_ok=True)
    encoding = {"implicit_vr": False, "little_endian": True} if uid.UID(syntax).is_private else {}
    ds.save_as(path, enforce_file_format=True, **encoding)
    return path


def without_preamble(path: Path, out: Path) -> Path:
    """The same file minus its 128-byte preamble and 'DICM' (file meta group kept), as some PACS write them."""
    out.write_bytes(path.read_bytes()[132:])
    return out


def bare_dataset(path: Path, out: Path) -> Path:
    """The dataset alone, implicit VR little endian, no preamble and no file meta (old ACR-NEMA style exports)."""
    from pydicom import dcmread
    from pydicom.filewriter import write_dataset
    from pydicom.filebase import DicomBytesIO

    ds = dcmread(path)
    buf = DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = True, True
    write_dataset(buf, ds)
    out.write_bytes(buf.getvalue())
    return out
