"""make_loader: preprocessed tensors, label dtypes per task, seeded shuffling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medopt.config import PreprocessConfig
from medopt.data import ArraySplit, DataError, make_loader

PRE = PreprocessConfig(image_size=8)


def _split(n: int = 10, multilabel: bool = False) -> ArraySplit:
    images = np.stack([np.full((8, 8), i * 20, np.uint8) for i in range(n)])
    labels = np.eye(3, dtype=np.int64)[np.arange(n) % 3] if multilabel else np.arange(n) % 2
    return ArraySplit(images=images, labels=labels)


def test_batches_shapes_and_dtypes() -> None:
    batches = list(make_loader(_split(), PRE, batch_size=4, shuffle=False, seed=0, task="binary"))
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    x, y = batches[0]
    assert x.shape == (4, 1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
    torch.testing.assert_close(x[:, 0, 0, 0], torch.tensor([0, 20, 40, 60]) / 255.0)
    assert y.tolist() == [0, 1, 0, 1]


def test_multilabel_labels_are_float() -> None:
    x, y = next(iter(make_loader(_split(multilabel=True), PRE, batch_size=3, shuffle=False, seed=0,
                                 task="multilabel")))
    assert y.dtype == torch.float32 and y.tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]


def test_shuffle_is_seeded() -> None:
    def order(seed: int) -> list[float]:
        loader = make_loader(_split(), PRE, batch_size=10, shuffle=True, seed=seed, task="binary")
        return next(iter(loader))[0][:, 0, 0, 0].tolist()

    assert order(3) == order(3) and order(3) != order(4)
    assert sorted(order(3)) == sorted(order(4))


def test_bad_inputs() -> None:
    with pytest.raises(DataError, match="labels must be \\(N,K\\)"):
        make_loader(_split(), PRE, batch_size=4, shuffle=False, seed=0, task="multilabel")
    empty = ArraySplit(images=np.zeros((0, 8, 8), np.uint8), labels=np.zeros(0, np.int64))
    with pytest.raises(DataError, match="empty"):
        make_loader(empty, PRE, batch_size=4, shuffle=True, seed=0, task="binary")
