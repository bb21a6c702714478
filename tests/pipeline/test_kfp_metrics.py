"""The evaluate results as KFP UI artifacts, logged into the real ``kfp.dsl`` artifact classes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from kfp import dsl

from medopt.evaluate.kfp_metrics import MAX_ROC_POINTS, log_classification, log_scalars, subsample_curve
from medopt.evaluate.metrics import compute_metrics, roc_points


def _values(task: str, classes: int, n: int = 1500, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    if task == "multilabel":
        y = rng.integers(0, 2, size=(n, classes))
        p = rng.random((n, classes))
    else:
        y = rng.integers(0, classes, size=n)
        p = rng.dirichlet(np.ones(classes), size=n)
    names = [f"c{i}" for i in range(classes)]
    return {"metrics": compute_metrics(y, p, task, names), "roc": roc_points(y, p, task, names)}


def test_binary_gets_the_confusion_matrix_and_a_subsampled_roc_curve() -> None:
    values = _values("binary", 2)
    artifact = dsl.ClassificationMetrics(name="classification", uri="/tmp/unused", metadata={})
    assert log_classification(artifact, values) == ["confusion_matrix", "roc"]
    matrix = artifact.metadata["confusionMatrix"]
    assert [a["displayName"] for a in matrix["annotationSpecs"]] == ["c0", "c1"]
    assert [r["row"] for r in matrix["rows"]] == values["metrics"]["confusion_matrix"]
    points = artifact.metadata["confidenceMetrics"]
    full = values["roc"]["c1"]
    assert len(full["fpr"]) > MAX_ROC_POINTS >= len(points) > MAX_ROC_POINTS - 5
    assert (points[0]["falsePositiveRate"], points[0]["recall"]) == (full["fpr"][0], full["tpr"][0])
    assert (points[-1]["falsePositiveRate"], points[-1]["recall"]) == (full["fpr"][-1], full["tpr"][-1])
    assert all(0.0 <= p["confidenceThreshold"] <= 1.0 for p in points)  # sklearn's leading inf is clipped


def test_multiclass_gets_the_confusion_matrix_only_and_multilabel_nothing() -> None:
    multiclass = dsl.ClassificationMetrics(name="c", uri="/tmp/unused", metadata={})
    assert log_classification(multiclass, _values("multiclass", 3)) == ["confusion_matrix"]
    assert len(multiclass.metadata["confusionMatrix"]["rows"]) == 3 and "confidenceMetrics" not in multiclass.metadata
    multilabel = dsl.ClassificationMetrics(name="c", uri="/tmp/unused", metadata={})
    assert log_classification(multilabel, _values("multilabel", 3)) == [] and multilabel.metadata == {}


def test_subsample_keeps_short_curves_and_refuses_ragged_ones() -> None:
    assert subsample_curve([0, 1], [0, 1], [1, 0]) == ([0.0, 1.0], [0.0, 1.0], [1.0, 0.0])
    fpr, tpr, thr = subsample_curve(list(range(1000)), list(range(1000)), list(range(1000)), max_points=10)
    assert fpr == tpr == thr and len(fpr) == 10 and (fpr[0], fpr[-1]) == (0.0, 999.0)
    with pytest.raises(ValueError, match="differ in length"):
        subsample_curve([0, 1], [0], [1, 0])


def test_scalars_skip_nan_and_non_numbers() -> None:
    artifact = dsl.Metrics(name="metrics", uri="/tmp/unused", metadata={})
    logged = log_scalars(artifact, {"acc": 0.9, "auc": math.nan, "n": 40, "flag": True, "note": "x"})
    assert logged == {"acc": 0.9, "n": 40.0} and artifact.metadata == {"acc": 0.9, "n": 40.0}
