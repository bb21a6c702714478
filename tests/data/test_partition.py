"""Federated partitions: disjoint, covering, seeded; Dirichlet skew vs IID; by site."""

from __future__ import annotations

import numpy as np
import pytest

from medopt.config import PartitionConfig
from medopt.data import DataError, partition_indices

LABELS = np.repeat(np.arange(3), 100)


def _check(parts: list[np.ndarray], n: int) -> None:
    together = np.concatenate(parts)
    assert len(together) == n and len(np.unique(together)) == n


def _skew(parts: list[np.ndarray], labels: np.ndarray) -> float:
    """Mean total-variation distance between each client's label distribution and the global one."""
    k = labels.max() + 1
    overall = np.bincount(labels, minlength=k) / len(labels)
    return float(np.mean([0.5 * np.abs(np.bincount(labels[p], minlength=k) / len(p) - overall).sum() for p in parts]))


def test_iid_equal_shares_and_seeded() -> None:
    cfg = PartitionConfig(kind="iid", num_clients=4)
    parts = partition_indices(LABELS, cfg, seed=0)
    _check(parts, 300)
    assert [len(p) for p in parts] == [75, 75, 75, 75]
    same = partition_indices(LABELS, cfg, seed=0)
    other = partition_indices(LABELS, cfg, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(parts, same))
    assert not np.array_equal(parts[0], other[0])


def test_dirichlet_small_alpha_is_skewed_and_respects_minimum() -> None:
    cfg = PartitionConfig(kind="dirichlet", num_clients=5, alpha=0.1, min_per_client=10)
    parts = partition_indices(LABELS, cfg, seed=0)
    _check(parts, 300)
    assert min(len(p) for p in parts) >= 10
    iid = partition_indices(LABELS, PartitionConfig(kind="iid", num_clients=5), seed=0)
    assert _skew(parts, LABELS) > 0.3 > 0.1 > _skew(iid, LABELS)
    again = partition_indices(LABELS, cfg, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))


def test_dirichlet_large_alpha_is_close_to_iid() -> None:
    cfg = PartitionConfig(kind="dirichlet", num_clients=3, alpha=1000.0)
    assert _skew(partition_indices(LABELS, cfg, seed=2), LABELS) < 0.05


def test_too_many_clients_raise() -> None:
    with pytest.raises(DataError, match="cannot give 200 clients 2 samples"):
        partition_indices(LABELS, PartitionConfig(kind="iid", num_clients=200), seed=0)
    impossible = PartitionConfig(kind="dirichlet", num_clients=10, alpha=0.01, min_per_client=30)
    with pytest.raises(DataError, match="raise partition.alpha"):
        partition_indices(LABELS, impossible, seed=0)


def test_by_site() -> None:
    sites = np.array(["b", "a", "c", "a", "b", "a"])
    parts = partition_indices(np.array([0, 1, 0, 1, 0, 1]), PartitionConfig(kind="site"), seed=0, sites=sites)
    assert [p.tolist() for p in parts] == [[1, 3, 5], [0, 4], [2]]
    with pytest.raises(DataError, match="needs site ids"):
        partition_indices(np.array([0, 1]), PartitionConfig(kind="site"), seed=0)


def test_quantity_skew_sizes_vary_labels_stay_balanced() -> None:
    from medopt.config import PartitionConfig

    labels = np.repeat([0, 1], 500)
    parts = partition_indices(labels, PartitionConfig(kind="quantity", num_clients=4, alpha=0.3), seed=3)
    sizes = sorted(len(p) for p in parts)
    assert sum(sizes) == 1000 and len(np.unique(np.concatenate(parts))) == 1000
    assert sizes[-1] > 3 * sizes[0]  # strongly unequal sizes
    big = max(parts, key=len)
    assert abs(labels[big].mean() - 0.5) < 0.1  # but each client's labels are still IID
    assert [p.tolist() for p in parts] == [
        p.tolist() for p in partition_indices(labels, PartitionConfig(kind="quantity", num_clients=4, alpha=0.3), seed=3)
    ]
