"""DataLoaders over a split preprocessed once up front, so epochs only shuffle and slice tensors."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, TensorDataset

from medopt.config import PreprocessConfig
from medopt.data.transforms import preprocess_batch
from medopt.data.types import TASKS, ArraySplit, DataError, Task


def label_tensor(split: ArraySplit, task: Task) -> torch.Tensor:
    """Labels as the loss functions want them: int64 (N,) for binary/multiclass, float32 (N,K) for multilabel."""
    if task not in TASKS:
        raise DataError(f"task must be one of {TASKS}, got {task!r}")
    labels = torch.from_numpy(split.labels.copy())
    if task == "multilabel":
        if labels.ndim != 2:
            raise DataError(f"multilabel labels must be (N,K), got shape {tuple(labels.shape)}")
        return labels.float()
    if labels.ndim != 1:
        raise DataError(f"{task} labels must be (N,), got shape {tuple(labels.shape)}")
    return labels.long()


def make_loader(
    split: ArraySplit, pre: PreprocessConfig, *, batch_size: int, shuffle: bool, seed: int, task: Task
) -> DataLoader:
    """A DataLoader of (image float32 (B,C,H,W), label) batches; shuffling order is fixed by ``seed``.

    Raises:
        DataError: the split is empty, or labels do not match ``task``.
    """
    if len(split) == 0:
        raise DataError("make_loader: the split is empty")
    if batch_size < 1:
        raise DataError(f"make_loader: batch_size must be >= 1, got {batch_size}")
    dataset = TensorDataset(preprocess_batch(split.images, pre), label_tensor(split, task))
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, num_workers=0)
