"""Dataset contract validation, load_dataset dispatch details, and the package's lazy exports."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import medopt.data
from medopt.config import DataConfig, SyntheticConfig
from medopt.data import ArraySplit, DataError, ImageDataset, load_dataset


def _split(n: int = 4, labels: object = None) -> ArraySplit:
    return ArraySplit(np.zeros((n, 8, 8), np.uint8), np.arange(n) % 2 if labels is None else labels)


def test_array_split_validation() -> None:
    split = ArraySplit(np.zeros((3, 8, 8), np.uint8), np.array([0, 1, 0], dtype=np.int32))
    assert len(split) == 3 and split.labels.dtype == np.int64
    with pytest.raises(DataError, match="uint8"):
        ArraySplit(np.zeros((3, 8, 8), np.float32), np.zeros(3))
    with pytest.raises(DataError, match="3 images but 2 labels"):
        ArraySplit(np.zeros((3, 8, 8), np.uint8), np.zeros(2))
    with pytest.raises(DataError, match=r"groups must have shape \(3,\)"):
        ArraySplit(np.zeros((3, 8, 8), np.uint8), np.zeros(3), groups=np.array(["a"]))
    with pytest.raises(DataError, match="C in"):
        ArraySplit(np.zeros((3, 8, 8, 2), np.uint8), np.zeros(3))


def test_image_dataset_properties_and_checks() -> None:
    rgb = ArraySplit(np.zeros((2, 6, 8, 3), np.uint8), np.array([0, 2]))
    ds = ImageDataset(rgb, rgb, rgb, class_names=("a", "b", "c"), task="multiclass", source="test")
    assert (ds.num_classes, ds.channels, ds.image_size) == (3, 3, (6, 8))
    with pytest.raises(DataError, match=r"labels must lie in \[0, 2\)"):
        ImageDataset(rgb, rgb, rgb, class_names=("a", "b"), task="binary", source="test")
    with pytest.raises(DataError, match="val images have shape"):
        ImageDataset(_split(), ArraySplit(np.zeros((2, 9, 9), np.uint8), np.array([0, 1])), _split(),
                     class_names=("a", "b"), task="binary", source="t")
    with pytest.raises(DataError, match="task must be one of"):
        ImageDataset(_split(), _split(), _split(), class_names=("a", "b"), task="regression", source="t")


def test_synthetic_source_with_class_names_and_max_samples() -> None:
    cfg = DataConfig(source="synthetic", synthetic=SyntheticConfig(num_samples=200, image_size=8),
                     class_names=("benign", "malignant"), max_samples=20, seed=4)
    ds = load_dataset(cfg)
    assert ds.class_names == ("benign", "malignant")
    assert [len(s) for s in ds.splits().values()] == [20, 20, 20]
    assert np.bincount(ds.train.labels).tolist() == [10, 10]
    again = load_dataset(cfg)
    assert np.array_equal(again.test.images, ds.test.images)
    with pytest.raises(DataError, match="3 names but synthetic.num_classes is 2"):
        load_dataset(DataConfig(class_names=("a", "b", "c")))


def test_exports_resolve_and_import_is_light() -> None:
    for name in medopt.data.__all__:
        assert getattr(medopt.data, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = medopt.data.nope
    code = ("import sys; from medopt.data import DataError, load_dataset, read_dicom; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
