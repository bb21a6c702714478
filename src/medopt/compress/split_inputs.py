"""The data a compressor needs: loaders for fine-tuning, calibration images, and chunked split inputs.

Why chunked: at 224x224 a whole preprocessed test split is hundreds of MB; predictions and calibration preprocess
a chunk at a time with ``preprocess_batch``, exactly as training did.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader

from medopt.compress.errors import CompressError
from medopt.config import PreprocessConfig
from medopt.data import ImageDataset, make_loader, preprocess_batch
from medopt.models.geometry import ModelGeometry

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class CompressData:
    """A dataset with its training preprocessing and fine-tuning batch size, and the model's geometry.

    ``geometry`` is the one the model file records; without one (a model built in memory) it is derived from the
    dataset and preprocessing by the same rule training used.
    """

    dataset: ImageDataset
    preprocess: PreprocessConfig
    batch_size: int = 64
    seed: int = 0
    geometry: ModelGeometry | None = None

    def _split(self, name: str):  # noqa: ANN202 (ArraySplit)
        if name not in SPLITS:
            raise CompressError(f"unknown split {name!r}; valid: {', '.join(SPLITS)}")
        return getattr(self.dataset, name)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of a preprocessed sample."""
        geometry = self.geometry or ModelGeometry.from_dataset(self.preprocess, self.dataset)
        return geometry.input_shape

    @property
    def task(self) -> str:
        return self.dataset.task

    def loader(self, split: str, *, shuffle: bool) -> DataLoader:
        """A (x, y) DataLoader over one split, preprocessed as in training."""
        return make_loader(self._split(split), self.preprocess, batch_size=self.batch_size, shuffle=shuffle,
                           seed=self.seed, task=self.dataset.task)

    def labels(self, split: str) -> np.ndarray:
        return np.asarray(self._split(split).labels)

    def batches(self, split: str, chunk: int = 64) -> Iterator[torch.Tensor]:
        """Preprocessed float32 inputs of one split, in order, ``chunk`` images at a time."""
        images = self._split(split).images
        for start in range(0, len(images), chunk):
            yield preprocess_batch(images[start:start + chunk], self.preprocess)

    def calibration(self, n: int) -> torch.Tensor:
        """A seeded random sample of ``n`` TRAINING images (fewer if the split is smaller), preprocessed."""
        images = self._split("train").images
        if n < 1:
            raise CompressError(f"calibration_samples must be >= 1, got {n}")
        idx = np.sort(np.random.default_rng(self.seed).permutation(len(images))[: min(n, len(images))])
        return preprocess_batch(images[idx], self.preprocess)

    def labelled_batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``n`` training images and labels (for Taylor-importance gradients)."""
        split = self._split("train")
        y = torch.as_tensor(np.asarray(split.labels[:n]))
        y = y.float() if self.dataset.task == "multilabel" else y.long()
        return preprocess_batch(split.images[:n], self.preprocess), y
