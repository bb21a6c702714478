"""Stratified splits: exact proportions, determinism, patient-level grouping, subsampling."""

from __future__ import annotations

import numpy as np
import pytest

from medopt.config import SplitConfig
from medopt.data import DataError, stratified_split
from medopt.data.splits import stratified_subsample, strata

DEFAULT = SplitConfig()


def _check_partition(parts: tuple[np.ndarray, ...], n: int) -> None:
    together = np.concatenate(parts)
    assert len(together) == n and len(np.unique(together)) == n  # disjoint and covering
    assert all((np.diff(p) > 0).all() for p in parts)  # sorted


def test_proportions_and_stratification_by_hand() -> None:
    labels = np.array([0] * 100 + [1] * 50)
    parts = stratified_split(labels, DEFAULT, seed=0)
    _check_partition(parts, 150)
    # cumulative rounding: train 80 + 40, val 10 + 5, test 10 + 5
    assert [np.bincount(labels[p]).tolist() for p in parts] == [[80, 40], [10, 5], [10, 5]]


def test_custom_fractions_and_determinism() -> None:
    labels = np.random.default_rng(1).integers(0, 3, size=200)
    cfg = SplitConfig(train=0.6, val=0.2, test=0.2)
    a = stratified_split(labels, cfg, seed=7)
    b = stratified_split(labels, cfg, seed=7)
    c = stratified_split(labels, cfg, seed=8)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])
    assert [len(p) for p in a] == [120, 40, 40]
    for p in a:  # each class within one sample of its share
        expected = np.bincount(labels, minlength=3) * len(p) / 200
        assert np.abs(np.bincount(labels[p], minlength=3) - expected).max() <= 1.0


def test_singleton_class_goes_to_train() -> None:
    labels = np.array([0] * 20 + [1])
    train, _, _ = stratified_split(labels, DEFAULT, seed=3)
    assert 20 in train


def test_groups_never_span_splits_and_train_has_every_class() -> None:
    rng = np.random.default_rng(0)
    patients = np.repeat(np.arange(60), rng.integers(1, 5, size=60))
    patient_label = rng.integers(0, 3, size=60)
    labels = patient_label[patients]
    groups = np.array([f"P{p:03d}" for p in patients])
    parts = stratified_split(labels, DEFAULT, seed=0, groups=groups)
    _check_partition(parts, len(labels))
    sets = [set(groups[p]) for p in parts]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert set(labels[parts[0]]) == {0, 1, 2}
    fractions = np.array([len(p) for p in parts]) / len(labels)
    np.testing.assert_allclose(fractions, [0.8, 0.1, 0.1], atol=0.05)
    again = stratified_split(labels, DEFAULT, seed=0, groups=groups)
    assert all(np.array_equal(x, y) for x, y in zip(parts, again))


def test_group_holding_a_rare_class_is_moved_to_train() -> None:
    labels = np.array([0] * 30 + [1, 1])
    groups = np.array([f"g{i}" for i in range(30)] + ["rare", "rare"])
    for seed in range(5):
        train, _, _ = stratified_split(labels, DEFAULT, seed=seed, groups=groups)
        assert {30, 31} <= set(train.tolist())


def test_too_few_samples_raise() -> None:
    with pytest.raises(DataError, match="left train or test empty"):
        stratified_split(np.array([0, 1]), DEFAULT, seed=0)
    with pytest.raises(DataError, match="at least 2 distinct groups"):
        stratified_split(np.array([0, 1, 0]), DEFAULT, seed=0, groups=np.array(["a", "a", "a"]))


def test_subsample_keeps_proportions() -> None:
    labels = np.array([0] * 90 + [1] * 10)
    idx = stratified_subsample(labels, 20, seed=0)
    assert len(idx) == 20 and np.bincount(labels[idx]).tolist() == [18, 2]
    np.testing.assert_array_equal(idx, stratified_subsample(labels, 20, seed=0))
    np.testing.assert_array_equal(stratified_subsample(labels, 500, seed=0), np.arange(100))


def test_multilabel_strata() -> None:
    y = np.array([[0, 1, 1], [0, 0, 0], [1, 0, 0]])
    np.testing.assert_array_equal(strata(y), [1, 3, 0])
