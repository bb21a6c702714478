"""Split a training set across simulated hospitals: IID, Dirichlet label or quantity skew, or one client per site.

Federated results depend heavily on how skewed the clients are, so partitions are seeded and reproducible and every
sample belongs to exactly one client.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from medopt.config import PartitionConfig
from medopt.data.splits import strata
from medopt.data.types import DataError

logger = logging.getLogger(__name__)

MAX_DIRICHLET_DRAWS = 1000


def _iid(n: int, cfg: PartitionConfig, rng: np.random.Generator) -> list[np.ndarray]:
    return [np.sort(part) for part in np.array_split(rng.permutation(n), cfg.num_clients)]


def _dirichlet_draw(y: np.ndarray, cfg: PartitionConfig, rng: np.random.Generator) -> list[np.ndarray]:
    """One draw: each class's samples are cut among clients by proportions ~ Dirichlet(alpha)."""
    parts: list[list[np.ndarray]] = [[] for _ in range(cfg.num_clients)]
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        props = rng.dirichlet(np.full(cfg.num_clients, cfg.alpha))
        cuts = (np.cumsum(props)[:-1] * len(members)).astype(np.int64)
        for client, chunk in enumerate(np.split(members, cuts)):
            parts[client].append(chunk)
    return [np.sort(np.concatenate(p)).astype(np.int64) for p in parts]


def _quantity_draw(y: np.ndarray, cfg: PartitionConfig, rng: np.random.Generator) -> list[np.ndarray]:
    """One draw: client sizes ~ Dirichlet(alpha) over a random permutation; labels stay IID within a client."""
    order = rng.permutation(len(y))
    props = rng.dirichlet(np.full(cfg.num_clients, cfg.alpha))
    cuts = (np.cumsum(props)[:-1] * len(y)).astype(np.int64)
    return [np.sort(chunk).astype(np.int64) for chunk in np.split(order, cuts)]


Draw = Callable[[np.ndarray, PartitionConfig, np.random.Generator], list[np.ndarray]]


def _redraw(draw: Draw, y: np.ndarray, cfg: PartitionConfig, rng: np.random.Generator) -> list[np.ndarray]:
    """Redraw until every client holds at least ``min_per_client`` samples (same seed, same result)."""
    for _ in range(MAX_DIRICHLET_DRAWS):
        parts = draw(y, cfg, rng)
        if min(len(p) for p in parts) >= cfg.min_per_client:
            return parts
    raise DataError(
        f"partition: no Dirichlet(alpha={cfg.alpha}) draw in {MAX_DIRICHLET_DRAWS} gave all {cfg.num_clients} "
        f"clients >= {cfg.min_per_client} samples from {len(y)}; raise partition.alpha or lower num_clients"
    )


def _by_site(sites: np.ndarray | None, n: int, cfg: PartitionConfig) -> list[np.ndarray]:
    if sites is None:
        raise DataError("partition kind 'site' needs site ids (set data.site_column), but the split has none")
    sites = np.asarray(sites).astype(str)
    if len(sites) != n:
        raise DataError(f"partition: sites has {len(sites)} entries but labels has {n}")
    names = np.unique(sites)
    if len(names) != cfg.num_clients:
        logger.info("partition 'site': %d distinct sites give %d clients (num_clients=%d ignored)",
                    len(names), len(names), cfg.num_clients)
    parts = [np.flatnonzero(sites == name).astype(np.int64) for name in names]
    for name, part in zip(names, parts):
        if len(part) < cfg.min_per_client:
            logger.warning("partition 'site': site %s has only %d samples (< min_per_client)", name, len(part))
    return parts


def partition_indices(
    labels: np.ndarray, cfg: PartitionConfig, seed: int, sites: np.ndarray | None = None
) -> list[np.ndarray]:
    """Disjoint, sorted index arrays (one per client) that together cover every sample.

    Kinds: "iid" (random equal shares), "dirichlet" (per-class shares ~ Dirichlet(alpha); small alpha = strong label
    skew), "quantity" (client sizes ~ Dirichlet(alpha), labels IID: quantity skew), "site" (one client per distinct
    site id, in sorted site order).

    Raises:
        DataError: too few samples for the clients, or kind "site" without site ids.
    """
    y = strata(labels)
    if cfg.kind == "site":
        return _by_site(sites, len(y), cfg)
    needed = cfg.num_clients * cfg.min_per_client
    if len(y) < needed:
        raise DataError(
            f"partition: {len(y)} samples cannot give {cfg.num_clients} clients {cfg.min_per_client} samples each"
        )
    rng = np.random.default_rng(seed)
    if cfg.kind == "iid":
        return _iid(len(y), cfg, rng)
    return _redraw(_quantity_draw if cfg.kind == "quantity" else _dirichlet_draw, y, cfg, rng)
