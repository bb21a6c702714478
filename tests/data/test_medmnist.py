"""MedMNIST npz loading: binary, multiclass, multilabel, bad files, and the real PneumoniaMNIST file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medopt.config import DataConfig
from medopt.data import DataError, load_dataset

PNEUMONIA = Path(__file__).resolve().parents[2].parent / "shared/data/pneumoniamnist.npz"
BINARY = {"train": [[0], [1], [1], [0], [1]], "val": [[0], [1]], "test": [[1], [0], [0]]}


def _cfg(path: Path, **kw) -> DataConfig:
    return DataConfig(source="medmnist", path=str(path), **kw)


def test_binary_labels_are_squeezed(medmnist_npz) -> None:
    path = medmnist_npz("b.npz", BINARY)
    ds = load_dataset(_cfg(path, class_names=("normal", "pneumonia")))
    assert ds.task == "binary" and ds.class_names == ("normal", "pneumonia")
    assert (len(ds.train), len(ds.val), len(ds.test)) == (5, 2, 3)
    np.testing.assert_array_equal(ds.train.labels, [0, 1, 1, 0, 1])
    assert ds.train.labels.dtype == np.int64 and ds.image_size == (8, 8) and ds.channels == 1
    assert ds.source == f"medmnist:{path}"
    with np.load(path) as raw:
        np.testing.assert_array_equal(ds.test.images, raw["test_images"])


def test_multiclass_rgb_default_names(medmnist_npz) -> None:
    rgb = np.zeros((4, 8, 8, 3), dtype=np.uint8)
    labels = {"train": [[0], [1], [2], [2]], "val": [[1]], "test": [[0]]}
    ds = load_dataset(_cfg(medmnist_npz("m.npz", labels, train_images=rgb,
                                        val_images=rgb[:1], test_images=rgb[:1])))
    assert ds.task == "multiclass" and ds.class_names == ("class_0", "class_1", "class_2")
    assert ds.channels == 3 and ds.num_classes == 3


def test_multilabel_chestmnist_shape(medmnist_npz) -> None:
    train = np.array([[1, 0, 1], [0, 1, 0], [0, 0, 0]])
    ds = load_dataset(_cfg(medmnist_npz("c.npz", {"train": train, "val": train[:1], "test": train[1:]})))
    assert ds.task == "multilabel" and ds.num_classes == 3
    assert ds.train.labels.shape == (3, 3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"drop": ("val_labels",)}, r"missing key.*val_labels"),
        ({"test_labels": np.array([[0], [1]])}, r"test_labels has 2 labels but .* 3 images"),
        ({"train_labels": np.array([[0], [0], [0], [0], [2]])}, r"train_labels has no sample of class.*\[1\]"),
        ({"val_images": np.zeros((2, 9, 9), dtype=np.uint8)}, r"val_images have shape"),
        ({"train_images": np.zeros((5, 8, 8), dtype=np.float32)}, r"train_images must hold uint8"),
    ],
)
def test_bad_npz_names_file_and_key(medmnist_npz, kwargs, match) -> None:
    path = medmnist_npz("bad.npz", BINARY, **kwargs)
    with pytest.raises(DataError, match=match) as err:
        load_dataset(_cfg(path))
    assert "bad.npz" in str(err.value)


def test_class_names_count_must_match(medmnist_npz) -> None:
    with pytest.raises(DataError, match="3 names but the labels define 2"):
        load_dataset(_cfg(medmnist_npz("b.npz", BINARY), class_names=("a", "b", "c")))


def test_missing_and_corrupt_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nope.npz.*not found"):
        load_dataset(_cfg(tmp_path / "nope.npz"))
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"PK\x03\x04 truncated zip")
    with pytest.raises(DataError, match="junk.npz"):
        load_dataset(_cfg(junk))


def test_max_samples_is_stratified_subsample(medmnist_npz) -> None:
    labels = {"train": [[0]] * 30 + [[1]] * 10, "val": [[0]] * 6 + [[1]] * 6, "test": [[0]] * 3 + [[1]]}
    ds = load_dataset(_cfg(medmnist_npz("s.npz", labels), max_samples=10))
    assert np.bincount(ds.train.labels).tolist() == [8, 2]  # 30:10 kept as 7.5:2.5 -> 8:2 by cumulative rounding
    assert np.bincount(ds.val.labels).tolist() == [5, 5]
    assert len(ds.test) == 4
    again = load_dataset(_cfg(medmnist_npz("s.npz", labels), max_samples=10))
    np.testing.assert_array_equal(again.train.images, ds.train.images)


@pytest.mark.skipif(not PNEUMONIA.is_file(), reason=f"shared PneumoniaMNIST file not present at {PNEUMONIA}")
def test_real_pneumoniamnist_counts() -> None:
    ds = load_dataset(_cfg(PNEUMONIA, class_names=("normal", "pneumonia")))
    assert ds.task == "binary" and ds.image_size == (28, 28) and ds.channels == 1
    assert ds.train.images.dtype == np.uint8
    counts = {name: np.bincount(split.labels).tolist() for name, split in ds.splits().items()}
    assert counts == {"train": [1214, 3494], "val": [135, 389], "test": [234, 390]}
