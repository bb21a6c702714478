"""The evaluate stage's results as KFP UI artifacts: scalar Metrics, and ClassificationMetrics (confusion matrix, ROC).

It only reshapes what ``evaluate_bundle`` computed (``compute_metrics`` and ``roc_points``); no metric is computed
here. The artifacts are duck-typed: a ``kfp.dsl.Metrics`` / ``ClassificationMetrics`` in a pod, a local stand-in
with the same methods in the in-process runner.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

MAX_ROC_POINTS = 200
"""The KFP UI draws every point it is given; a test set of thousands gives a curve of thousands of points."""


class MetricsLike(Protocol):
    def log_metric(self, metric: str, value: float) -> None: ...


class ClassificationMetricsLike(Protocol):
    def log_confusion_matrix(self, categories: list[str], matrix: list[list[int]]) -> None: ...

    def log_roc_curve(self, fpr: list[float], tpr: list[float], threshold: list[float]) -> None: ...


def log_scalars(artifact: MetricsLike, scalars: Mapping[str, Any]) -> dict[str, float]:
    """Log the finite numbers of ``scalars`` (KFP metrics are JSON numbers: NaN, e.g. an undefined AUC, is skipped)."""
    logged = {name: float(value) for name, value in scalars.items()
              if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value))}
    for name, value in logged.items():
        artifact.log_metric(name, value)
    return logged


def subsample_curve(
    fpr: Sequence[float], tpr: Sequence[float], thresholds: Sequence[float], max_points: int = MAX_ROC_POINTS
) -> tuple[list[float], list[float], list[float]]:
    """At most ``max_points`` evenly spaced points of a ROC curve, its first and last point always kept."""
    if not len(fpr) == len(tpr) == len(thresholds):
        raise ValueError(f"ROC curve lists differ in length: {len(fpr)}, {len(tpr)}, {len(thresholds)}")
    n = len(fpr)
    if n <= max_points:
        return [float(v) for v in fpr], [float(v) for v in tpr], [float(v) for v in thresholds]
    keep = sorted({round(i * (n - 1) / (max_points - 1)) for i in range(max_points)})
    return [float(fpr[i]) for i in keep], [float(tpr[i]) for i in keep], [float(thresholds[i]) for i in keep]


def log_classification(artifact: ClassificationMetricsLike, values: Mapping[str, Any]) -> list[str]:
    """Log the confusion matrix (binary, multiclass) and the ROC curve (binary) of ``evaluate_bundle``'s values.

    Class names are the keys of ``metrics.per_class``, in class order. A multilabel task (one 2x2 matrix per label)
    gets neither: KFP's confusion matrix is one square matrix over one set of classes. Returns what was logged.
    """
    metrics = values.get("metrics") or {}
    names = list(metrics.get("per_class") or {})
    matrix = metrics.get("confusion_matrix")
    logged: list[str] = []
    square = (isinstance(matrix, list) and len(matrix) == len(names) > 0
              and all(isinstance(row, list) and len(row) == len(names) and
                      all(isinstance(v, int) for v in row) for row in matrix))
    if not square:
        return logged
    artifact.log_confusion_matrix(names, matrix)
    logged.append("confusion_matrix")
    curve = (values.get("roc") or {}).get(names[-1]) if len(names) == 2 else None
    if curve and "thresholds" in curve:
        artifact.log_roc_curve(*subsample_curve(curve["fpr"], curve["tpr"], curve["thresholds"]))
        logged.append("roc")
    return logged
