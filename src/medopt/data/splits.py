"""Deterministic stratified train/val/test splits (optionally keeping each patient in one split) and subsampling.

Own implementation rather than sklearn's splitters: those refuse classes with a single member and cannot both keep
groups together and guarantee every class is in train, which small medical datasets need.
"""

from __future__ import annotations

import numpy as np

from medopt.config import SplitConfig
from medopt.data.types import DataError


def strata(labels: np.ndarray) -> np.ndarray:
    """One stratum id per sample: the class for (N,) labels; the first positive class (or K) for (N,K) multilabel."""
    labels = np.asarray(labels)
    if labels.ndim == 1:
        return labels.astype(np.int64)
    if labels.ndim != 2:
        raise DataError(f"labels must be (N,) or (N,K), got shape {labels.shape}")
    first = np.argmax(labels > 0, axis=1)
    return np.where(labels.any(axis=1), first, labels.shape[1]).astype(np.int64)


def _cumulative_counts(sizes: np.ndarray, fraction: float) -> np.ndarray:
    """Per-class counts for one fraction, rounded on the running total so overall counts stay within one."""
    cum = np.floor(np.cumsum(sizes) * fraction + 0.5).astype(np.int64)
    return np.diff(np.concatenate([[0], cum]))


def _plain_split(y: np.ndarray, cfg: SplitConfig, rng: np.random.Generator) -> np.ndarray:
    """Assignment 0/1/2 (train/val/test) per sample, stratified per class with at least one train sample per class."""
    classes, inverse = np.unique(y, return_inverse=True)
    sizes = np.bincount(inverse, minlength=len(classes))
    n_train = np.maximum(_cumulative_counts(sizes, cfg.train), 1)
    n_val = np.minimum(_cumulative_counts(sizes, cfg.val), sizes - n_train)
    assign = np.empty(len(y), dtype=np.int64)
    for c in range(len(classes)):
        members = rng.permutation(np.flatnonzero(inverse == c))
        assign[members] = 2
        assign[members[: n_train[c]]] = 0
        assign[members[n_train[c] : n_train[c] + n_val[c]]] = 1
    return assign


def _group_counts(y: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(group index per sample, per-group class-count matrix G x C)."""
    _, g_inv = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    _, y_inv = np.unique(y, return_inverse=True)
    counts = np.zeros((g_inv.max() + 1, y_inv.max() + 1), dtype=np.float64)
    np.add.at(counts, (g_inv, y_inv), 1.0)
    return g_inv, counts


def _greedy_group_assign(counts: np.ndarray, fractions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Assign groups (largest first, ties in seeded random order) to the split that best tracks per-class targets."""
    class_sizes = counts.sum(axis=0)
    targets = fractions[:, None] * class_sizes[None, :]
    weights = 1.0 / np.maximum(class_sizes, 1.0)
    filled = np.zeros_like(targets)
    order = rng.permutation(len(counts))
    order = order[np.argsort(-counts[order].sum(axis=1), kind="stable")]
    group_split = np.empty(len(counts), dtype=np.int64)
    for g in order:
        v = counts[g]
        cost = ((2.0 * (filled - targets) + v) * v * weights).sum(axis=1)
        cost[fractions <= 0] = np.inf
        s = int(np.argmin(cost))
        group_split[g] = s
        filled[s] += v
    return group_split


def _ensure_train_has_all(group_split: np.ndarray, counts: np.ndarray) -> None:
    """Move the smallest group holding a class into train whenever that class is missing from train."""
    for c in range(counts.shape[1]):
        if counts[group_split == 0, c].sum() > 0:
            continue
        holders = np.flatnonzero(counts[:, c] > 0)
        smallest = holders[np.argmin(counts[holders].sum(axis=1))]
        group_split[smallest] = 0


def _group_split(y: np.ndarray, groups: np.ndarray, cfg: SplitConfig, rng: np.random.Generator) -> np.ndarray:
    g_inv, counts = _group_counts(y, groups)
    if len(counts) < 2:
        raise DataError(f"group split needs at least 2 distinct groups, got {len(counts)}")
    fractions = np.array([cfg.train, cfg.val, cfg.test], dtype=np.float64)
    group_split = _greedy_group_assign(counts, fractions, rng)
    _ensure_train_has_all(group_split, counts)
    return group_split[g_inv]


def stratified_split(
    labels: np.ndarray, cfg: SplitConfig, seed: int, groups: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted (train, val, test) index arrays, stratified by class and deterministic in ``seed``.

    With ``groups`` (patient ids) no group spans two splits, so a patient's images never leak from train into test.
    Every class is always present in train.

    Raises:
        DataError: too few samples or groups to give train and test at least one sample each.
    """
    y = strata(labels)
    if groups is not None and len(groups) != len(y):
        raise DataError(f"groups has {len(groups)} entries but labels has {len(y)}")
    if len(y) < 2:
        raise DataError(f"cannot split {len(y)} sample(s) into train and test")
    rng = np.random.default_rng(seed)
    assign = _plain_split(y, cfg, rng) if groups is None else _group_split(y, np.asarray(groups), cfg, rng)
    parts = tuple(np.flatnonzero(assign == s).astype(np.int64) for s in range(3))
    if len(parts[0]) == 0 or len(parts[2]) == 0:
        sizes = [len(p) for p in parts]
        raise DataError(f"split of {len(y)} samples left train or test empty (train/val/test sizes {sizes})")
    return parts  # type: ignore[return-value]


def stratified_subsample(labels: np.ndarray, max_samples: int, seed: int) -> np.ndarray:
    """Sorted indices of at most ``max_samples`` samples keeping class proportions (each present class keeps >= 1)."""
    y = strata(labels)
    if len(y) <= max_samples:
        return np.arange(len(y), dtype=np.int64)
    classes, inverse = np.unique(y, return_inverse=True)
    sizes = np.bincount(inverse, minlength=len(classes))
    keep = np.maximum(_cumulative_counts(sizes, max_samples / len(y)), 1)
    while keep.sum() > max_samples:
        keep[np.argmax(keep)] -= 1
    rng = np.random.default_rng(seed)
    chosen = [rng.permutation(np.flatnonzero(inverse == c))[: keep[c]] for c in range(len(classes))]
    return np.sort(np.concatenate(chosen)).astype(np.int64)
