import numpy as np
import pytest

from federate_helpers import make_config
from medopt.data.synthetic import synthetic_dataset
from medopt.data.types import DataError
from medopt.federate.partitions import pool_of, split_clients


def _key(images: np.ndarray) -> set[bytes]:
    return {img.tobytes() for img in images}


def test_each_client_splits_60_20_20_and_the_test_set_stays_global(cfg, dataset) -> None:
    clients = split_clients(dataset, cfg)
    assert len(clients) == 3
    pool = pool_of(dataset)
    assert sum(sum(c.sizes().values()) for c in clients) == len(pool)
    for c in clients:
        n = sum(c.sizes().values())
        assert abs(len(c.train) - 0.6 * n) <= 2 and abs(len(c.val) - 0.2 * n) <= 2 and abs(len(c.test) - 0.2 * n) <= 2
        assert len(c.test) > 0
        assert not (_key(c.test.images) & _key(dataset.test.images))  # no client holds a global test image
    seen = [_key(s.images) for c in clients for s in (c.train, c.val, c.test)]
    assert sum(len(s) for s in seen) == len(set().union(*seen))  # disjoint


def test_dirichlet_partition_is_deterministic_and_skewed() -> None:
    cfg = make_config("data.partition.kind=dirichlet", "data.partition.alpha=0.3", "data.synthetic.num_samples=300")
    ds = synthetic_dataset(cfg.data.synthetic, seed=0, split=cfg.data.split)
    a, b = split_clients(ds, cfg), split_clients(ds, cfg)
    assert all(np.array_equal(x.train.labels, y.train.labels) for x, y in zip(a, b))
    shares = [np.mean(c.train.labels == 1) for c in a]
    assert max(shares) - min(shares) > 0.2


def test_a_client_too_small_to_split_is_named() -> None:
    cfg = make_config("data.partition.num_clients=40", "data.partition.min_per_client=1")
    ds = synthetic_dataset(cfg.data.synthetic, seed=0, split=cfg.data.split)
    with pytest.raises(DataError, match="client"):
        split_clients(ds, cfg)
