"""compute_metrics / roc_points against scikit-learn on random data."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from sklearn import metrics as skm

from medopt.evaluate.metrics import SCALAR_METRICS, MetricInputError, compute_metrics, roc_points


def _data(task: str, n: int = 120, c: int = 4, seed: int = 0, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if task == "multilabel":
        y = rng.integers(0, 2, (n, c))
        p = np.clip(0.3 * y + 0.7 * rng.random((n, c)), 0, 1)
        return y, (np.round(p, 1) if ties else p)
    y = rng.integers(0, c, n)
    logits = rng.normal(size=(n, c))
    logits[np.arange(n), y] += 0.8
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, (np.round(p, 1) if ties else p)


def _sklearn_reference(y: np.ndarray, p: np.ndarray, task: str) -> dict[str, float]:
    if task == "multilabel":
        pred = (p > 0.5).astype(int)
        ref = {
            "acc": np.mean([skm.accuracy_score(y[:, k], pred[:, k]) for k in range(y.shape[1])]),
            "bacc": np.mean([skm.balanced_accuracy_score(y[:, k], pred[:, k]) for k in range(y.shape[1])]),
            "auc": skm.roc_auc_score(y, p, average="macro"),
        }
        labels = None
    else:
        pred = p.argmax(axis=1)
        if task == "binary":
            auc = skm.roc_auc_score(y, p[:, 1])
        elif np.allclose(p.sum(axis=1), 1):
            auc = skm.roc_auc_score(y, p, multi_class="ovr", average="macro")
        else:  # rounded (tied) scores no longer sum to 1; OvR macro is the mean of per-class AUCs
            auc = np.mean([skm.roc_auc_score(y == k, p[:, k]) for k in range(p.shape[1])])
        ref = {"acc": skm.accuracy_score(y, pred), "bacc": skm.balanced_accuracy_score(y, pred), "auc": auc}
        labels = list(range(p.shape[1]))
    for avg in ("weighted", "macro"):
        kw = {"average": avg, "zero_division": 0, "labels": labels}
        ref[f"precision_{avg}"] = skm.precision_score(y, pred, **kw)
        ref[f"recall_{avg}"] = skm.recall_score(y, pred, **kw)
        ref[f"f1_{avg}"] = skm.f1_score(y, pred, **kw)
    return ref


CASES = [("binary", 2), ("multiclass", 4), ("multilabel", 3)]


@pytest.mark.parametrize(("task", "c"), CASES)
@pytest.mark.parametrize("ties", [False, True])
def test_scalar_metrics_equal_sklearn(task: str, c: int, ties: bool) -> None:
    y, p = _data(task, c=c, ties=ties)
    got = compute_metrics(y, p, task)
    ref = _sklearn_reference(y, p, task)
    for name, value in ref.items():
        assert got[name] == pytest.approx(value, abs=1e-12), name
    assert set(SCALAR_METRICS) <= set(got)
    assert all(isinstance(got[m], float) for m in SCALAR_METRICS)


@pytest.mark.parametrize(("task", "c"), CASES)
def test_avg_is_mean_of_five(task: str, c: int) -> None:
    got = compute_metrics(*_data(task, c=c, seed=3), task)
    parts = [got[k] for k in ("acc", "bacc", "precision_weighted", "recall_weighted", "f1_weighted")]
    assert got["avg"] == pytest.approx(sum(parts) / 5)


@pytest.mark.parametrize(("task", "c"), [("binary", 2), ("multiclass", 4)])
def test_confusion_and_per_class_equal_sklearn(task: str, c: int) -> None:
    y, p = _data(task, c=c, seed=1)
    names = [f"c{i}" for i in range(c)]
    got = compute_metrics(y, p, task, class_names=names)
    pred = p.argmax(axis=1)
    assert got["confusion_matrix"] == skm.confusion_matrix(y, pred, labels=range(c)).tolist()
    prec, rec, f1, sup = skm.precision_recall_fscore_support(y, pred, labels=range(c), zero_division=0)
    for i, name in enumerate(names):
        pc = got["per_class"][name]
        assert (pc["precision"], pc["recall"], pc["f1"]) == pytest.approx((prec[i], rec[i], f1[i]))
        assert pc["support"] == sup[i]
        assert pc["auc"] == pytest.approx(skm.roc_auc_score(y == i, p[:, i]))
    assert got["n"] == len(y)


def test_multilabel_confusion_per_label() -> None:
    y, p = _data("multilabel", c=3, seed=2)
    got = compute_metrics(y, p, "multilabel", class_names=["a", "b", "c"])
    assert got["confusion_matrix"] == skm.multilabel_confusion_matrix(y, (p > 0.5).astype(int)).tolist()
    assert list(got["per_class"]) == ["a", "b", "c"]
    assert got["per_class"]["b"]["support"] == int(y[:, 1].sum())


def test_label_column_vector_is_accepted() -> None:
    y, p = _data("binary", c=2, seed=4)
    assert compute_metrics(y[:, None], p, "binary") == compute_metrics(y, p, "binary")


@pytest.mark.parametrize(
    ("task", "y", "p"),
    [
        ("binary", np.zeros(10, dtype=int), np.full((10, 2), 0.5)),
        ("multiclass", np.array([0, 1, 0, 1, 0, 1]), np.full((6, 3), 1 / 3)),
        ("multilabel", np.array([[0, 1], [0, 0], [0, 1]]), np.full((3, 2), 0.4)),
    ],
)
def test_auc_nan_with_one_class_logs_warning(task: str, y: np.ndarray, p: np.ndarray, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="medopt.evaluate.metrics"):
        got = compute_metrics(y, p, task)
    assert np.isnan(got["auc"])
    assert np.isfinite(got["acc"])
    assert "AUC undefined" in caplog.text


@pytest.mark.parametrize(
    ("task", "y", "p", "fragment"),
    [
        ("binary", np.zeros(5, dtype=int), np.zeros((5, 3)), "(5, 3)"),
        ("multiclass", np.zeros(4, dtype=int), np.zeros((5, 3)), "(4,)"),
        ("multilabel", np.zeros((5, 2), dtype=int), np.zeros((5, 3)), "(5, 2)"),
        ("multiclass", np.array([0, 3]), np.zeros((2, 3)), "[0, 2]"),
        ("multiclass", np.zeros(3, dtype=int), np.zeros(3), "(3,)"),
        ("multiclass", np.zeros(2, dtype=int), np.array([[0.5, np.nan], [0.5, 0.5]]), "NaN"),
        ("regression", np.zeros(2, dtype=int), np.zeros((2, 2)), "task"),
    ],
)
def test_bad_inputs_raise_with_shapes(task: str, y: np.ndarray, p: np.ndarray, fragment: str) -> None:
    with pytest.raises(MetricInputError, match=__import__("re").escape(fragment)):
        compute_metrics(y, p, task)  # type: ignore[arg-type]


def test_class_names_count_checked() -> None:
    y, p = _data("multiclass", c=4)
    with pytest.raises(ValueError, match="class_names has 2 names"):
        compute_metrics(y, p, "multiclass", class_names=["a", "b"])


@pytest.mark.parametrize(("task", "c"), CASES)
def test_roc_points_match_sklearn(task: str, c: int) -> None:
    y, p = _data(task, c=c, seed=5)
    curves = roc_points(y, p, task)
    expected = ["1"] if task == "binary" else [str(k) for k in range(c)]
    assert list(curves) == expected
    for key, curve in curves.items():
        k = int(key)
        positive = y[:, k] == 1 if task == "multilabel" else y == k
        fpr, tpr, _ = skm.roc_curve(positive, p[:, k])
        assert curve["fpr"] == pytest.approx(fpr.tolist())
        assert curve["tpr"] == pytest.approx(tpr.tolist())
        assert curve["auc"] == pytest.approx(skm.auc(fpr, tpr))


def test_roc_points_skips_undefined_class(caplog) -> None:
    y = np.array([0, 1, 0, 1])
    p = np.tile([0.5, 0.3, 0.2], (4, 1))
    with caplog.at_level(logging.WARNING):
        curves = roc_points(y, p, "multiclass", class_names=["a", "b", "c"])
    assert list(curves) == ["a", "b"]
    assert "'c'" in caplog.text
