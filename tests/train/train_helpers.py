"""Tiny models, separable datasets and reference metrics for the training tests.

Built here rather than taken from medopt.data / medopt.models so these tests only exercise medopt.train.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def blobs(n: int, seed: int, num_classes: int = 2, size: int = 8) -> TensorDataset:
    """Images whose class shifts the mean brightness of the whole image: trivially separable."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % num_classes
    x = 0.3 * torch.randn(n, 1, size, size, generator=g)
    x += (y.float() * 2.0 - (num_classes - 1)).view(-1, 1, 1, 1)
    return TensorDataset(x, y.long())


def multilabel_blobs(n: int, seed: int, size: int = 8) -> TensorDataset:
    """Two independent labels: label 0 sets the left half's brightness, label 1 the right half's."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n, 2), generator=g).float()
    x = 0.3 * torch.randn(n, 1, size, size, generator=g)
    x[:, :, :, : size // 2] += (2 * y[:, 0] - 1).view(-1, 1, 1, 1)
    x[:, :, :, size // 2 :] += (2 * y[:, 1] - 1).view(-1, 1, 1, 1)
    return TensorDataset(x, y)


def tiny_model(num_outputs: int = 2, size: int = 8, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(size * size, 8), nn.ReLU(), nn.Dropout(0.1), nn.Linear(8, num_outputs))


def loader(ds: TensorDataset, batch_size: int = 16, shuffle: bool = True) -> DataLoader:
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle)


def sk_metrics(y_true: np.ndarray, y_prob: np.ndarray, task: str) -> dict[str, float]:
    """Reference metrics from scikit-learn, standing in for medopt.evaluate.metrics."""
    if task == "multilabel":
        pred = (y_prob >= 0.5).astype(int)
        acc = float((pred == y_true).mean())
        return {"acc": acc, "bacc": acc, "auc": float(roc_auc_score(y_true, y_prob, average="macro"))}
    pred = y_prob.argmax(axis=1)
    if y_prob.shape[1] == 2:
        auc = roc_auc_score(y_true, y_prob[:, 1])
    else:
        auc = roc_auc_score(y_true, y_prob, multi_class="ovr")
    return {"acc": accuracy_score(y_true, pred), "bacc": balanced_accuracy_score(y_true, pred), "auc": float(auc)}
