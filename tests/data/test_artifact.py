"""Dataset artifact round trip, atomic write, and describe_dataset numbers."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from medopt.config import SyntheticConfig
from medopt.data import ArraySplit, DataError, describe_dataset, read_dataset, save_dataset, synthetic_dataset


def _with_ids(ds):
    def tag(split: ArraySplit, prefix: str) -> ArraySplit:
        n = len(split)
        return ArraySplit(split.images, split.labels, groups=np.array([f"{prefix}{i}" for i in range(n)], dtype=object),
                          sites=np.arange(n) % 2)

    return dataclasses.replace(ds, train=tag(ds.train, "tr"), val=tag(ds.val, "va"), test=tag(ds.test, "te"))


def test_round_trip_is_exact(tmp_path: Path) -> None:
    ds = _with_ids(synthetic_dataset(SyntheticConfig(num_samples=30, image_size=8), 1))
    path = tmp_path / "out" / "dataset.npz"
    save_dataset(ds, path)
    assert [p.name for p in path.parent.iterdir()] == ["dataset.npz"]  # no temp file left behind
    back = read_dataset(path)
    assert (back.class_names, back.task, back.source) == (ds.class_names, ds.task, ds.source)
    for name, split in ds.splits().items():
        other = getattr(back, name)
        assert np.array_equal(other.images, split.images) and np.array_equal(other.labels, split.labels)
        assert other.groups.tolist() == split.groups.tolist() and other.sites.tolist() == split.sites.tolist()


def test_read_rejects_foreign_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nothing.npz.*not found"):
        read_dataset(tmp_path / "nothing.npz")
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, train_images=np.zeros((1, 8, 8), np.uint8))
    with pytest.raises(DataError, match="foreign.npz: not a medopt-dataset"):
        read_dataset(foreign)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"\x00" * 64)
    with pytest.raises(DataError, match="garbage.npz"):
        read_dataset(garbage)


def test_describe_counts_and_pixel_stats() -> None:
    ds = synthetic_dataset(SyntheticConfig(num_samples=50, image_size=8, num_classes=2), 2)
    info = describe_dataset(ds)
    assert info["task"] == "binary" and info["image_size"] == [8, 8] and info["channels"] == 1
    assert info["dtype"] == "uint8" and info["class_names"] == ["class_0", "class_1"]
    train = info["splits"]["train"]
    assert train["count"] == 40 and train["per_class"] == {"class_0": 20, "class_1": 20}
    pixels = ds.train.images.astype(np.float64) / 255
    assert train["pixel_mean"][0] == pytest.approx(pixels.mean(), abs=1e-6)
    assert train["pixel_std"][0] == pytest.approx(pixels.std(), abs=1e-6)
    assert sum(s["count"] for s in info["splits"].values()) == 50


def test_describe_multilabel_counts_positives() -> None:
    split = ArraySplit(np.zeros((3, 8, 8, 3), np.uint8), np.array([[1, 0], [1, 1], [0, 0]]))
    ds = synthetic_dataset(SyntheticConfig(num_samples=30, image_size=8), 0)
    ml = dataclasses.replace(ds, train=split, val=split, test=split, task="multilabel")
    info = describe_dataset(ml)
    assert info["splits"]["val"]["per_class"] == {"class_0": 2, "class_1": 1}
    assert info["channels"] == 3 and info["splits"]["test"]["pixel_mean"] == [0.0, 0.0, 0.0]
