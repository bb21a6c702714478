"""Each simulated hospital's own data: a partition of the non-test pool, split 60/20/20 inside the hospital.

The dataset's test split is never given to a client: it is the global held-out test set the server scores the
global model on, so federated and centralized runs are compared on the same images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medopt.config import ExperimentConfig
from medopt.data.partition import partition_indices
from medopt.data.splits import stratified_split
from medopt.data.types import ArraySplit, DataError, ImageDataset


@dataclass(frozen=True, eq=False)
class ClientData:
    """One hospital: its train/val/test splits (the val split scores local training, test the global model)."""

    client_id: int
    train: ArraySplit
    val: ArraySplit
    test: ArraySplit

    def sizes(self) -> dict[str, int]:
        """Sample counts per split."""
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def _optional(values: np.ndarray | None, idx: np.ndarray) -> np.ndarray | None:
    return None if values is None else values[idx]


def subset(split: ArraySplit, idx: np.ndarray) -> ArraySplit:
    """The rows ``idx`` of a split, ids included."""
    return ArraySplit(images=split.images[idx], labels=split.labels[idx], groups=_optional(split.groups, idx),
                      sites=_optional(split.sites, idx))


def pool_of(dataset: ImageDataset) -> ArraySplit:
    """Train and val splits together: everything clients may hold (the test split stays global)."""
    def cat(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
        return None if a is None or b is None else np.concatenate([a, b])

    tr, va = dataset.train, dataset.val
    return ArraySplit(images=np.concatenate([tr.images, va.images]), labels=np.concatenate([tr.labels, va.labels]),
                      groups=cat(tr.groups, va.groups), sites=cat(tr.sites, va.sites))


def split_clients(dataset: ImageDataset, cfg: ExperimentConfig) -> list[ClientData]:
    """Partition the pool per ``data.partition``, then split each part per ``federate.client_split``.

    Raises:
        DataError: a client ends up without train or test images (names the client and its size).
    """
    pool = pool_of(dataset)
    parts = partition_indices(pool.labels, cfg.data.partition, seed=cfg.data.seed, sites=pool.sites)
    clients = []
    for cid, idx in enumerate(parts):
        part = subset(pool, idx)
        try:
            tr, va, te = stratified_split(part.labels, cfg.federate.client_split, seed=cfg.data.seed + cid,
                                          groups=part.groups)
        except DataError as exc:
            raise DataError(f"client {cid} ({len(part)} samples): {exc}") from None
        clients.append(ClientData(cid, subset(part, tr), subset(part, va), subset(part, te)))
    return clients
