"""The data stage: sources, splits, partitions, batched transforms, loaders and the dataset artifact.

Names are resolved lazily so that importing ``medopt.data`` (e.g. for DataError) does not import torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__all__ = [
    "load_dataset",
    "ImageDataset",
    "ArraySplit",
    "DataError",
    "save_dataset",
    "read_dataset",
    "preprocess_batch",
    "augment_batch",
    "make_loader",
    "stratified_split",
    "partition_indices",
    "synthetic_dataset",
    "describe_dataset",
    "read_dicom",
]

_WHERE = {
    "load_dataset": "medopt.data.load",
    "ImageDataset": "medopt.data.types",
    "ArraySplit": "medopt.data.types",
    "DataError": "medopt.data.types",
    "save_dataset": "medopt.data.artifact",
    "read_dataset": "medopt.data.artifact",
    "preprocess_batch": "medopt.data.transforms",
    "augment_batch": "medopt.data.transforms",
    "make_loader": "medopt.data.loader",
    "stratified_split": "medopt.data.splits",
    "partition_indices": "medopt.data.partition",
    "synthetic_dataset": "medopt.data.synthetic",
    "describe_dataset": "medopt.data.describe",
    "read_dicom": "medopt.data.dicom",
}

if TYPE_CHECKING:  # pragma: no cover
    from medopt.data.artifact import read_dataset, save_dataset
    from medopt.data.describe import describe_dataset
    from medopt.data.dicom import read_dicom
    from medopt.data.load import load_dataset
    from medopt.data.loader import make_loader
    from medopt.data.partition import partition_indices
    from medopt.data.splits import stratified_split
    from medopt.data.synthetic import synthetic_dataset
    from medopt.data.transforms import augment_batch, preprocess_batch
    from medopt.data.types import ArraySplit, DataError, ImageDataset


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'medopt.data' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
