"""Tiny DICOM files for tests (pydicom): one writer shared by the data and serving tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid


def write_dicom(path: Path, pixels: np.ndarray, photometric: str = "MONOCHROME2", slope: float | None = None,
                intercept: float | None = None, center: float | None = None, width: float | None = None) -> Path:
    """An uncompressed DICOM file of ``pixels`` (8/16-bit, signed or not), optional rescale and window tags."""
    pixels = np.asarray(pixels)
    bits = pixels.dtype.itemsize * 8
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
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
