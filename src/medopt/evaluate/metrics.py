"""Classification metrics for binary, multiclass and multilabel medical-image tasks.

All scalar metrics are computed from *sample weights* so that one vectorised code path serves both the point
estimate (every weight 1) and the bootstrap (weights = how often each sample was drawn in a resample). Results
match scikit-learn with ``labels=range(C)`` and ``zero_division=0``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from medopt.errors import MedoptError

log = logging.getLogger(__name__)

Task = Literal["binary", "multiclass", "multilabel"]
TASKS: tuple[str, ...] = ("binary", "multiclass", "multilabel")

#: Scalar metric names in display order.
SCALAR_METRICS: tuple[str, ...] = (
    "auc",
    "acc",
    "bacc",
    "precision_weighted",
    "recall_weighted",
    "f1_weighted",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "avg",
)
_AVG_PARTS = ("acc", "bacc", "precision_weighted", "recall_weighted", "f1_weighted")
#: Multilabel predictions are ``prob > threshold``, as MedMNIST's evaluator does.
MULTILABEL_THRESHOLD = 0.5


class MetricInputError(MedoptError, ValueError):
    """Labels or probabilities handed to a metric are malformed (shape, range, task)."""


# ------------------------------------------------------------------------------------------------ validation
def validate_inputs(y_true: Any, y_prob: Any, task: str) -> tuple[np.ndarray, np.ndarray]:
    """Check shapes and values once, so every metric below can trust its inputs.

    Returns:
        ``(y_true, y_prob)`` as int64 and float64 arrays; a (N, 1) label column is flattened to (N,).
    """
    if task not in TASKS:
        raise MetricInputError(f"task must be one of {TASKS}, got {task!r}")
    yt = np.asarray(y_true)
    yp = np.asarray(y_prob, dtype=np.float64)
    if yp.ndim != 2 or yp.shape[0] == 0 or yp.shape[1] < 1:
        raise MetricInputError(f"y_prob must have shape (N, C) with N >= 1, got shape {yp.shape}")
    if not np.all(np.isfinite(yp)):
        raise MetricInputError("y_prob contains NaN or infinite values")
    n, c = yp.shape
    if task == "multilabel":
        if yt.shape != yp.shape:
            raise MetricInputError(f"multilabel y_true shape {yt.shape} must equal y_prob shape {yp.shape}")
        if not np.isin(yt, (0, 1)).all():
            raise MetricInputError("multilabel y_true must hold only 0/1 values")
        return yt.astype(np.int64), yp
    if yt.ndim == 2 and yt.shape[1] == 1:
        yt = yt[:, 0]
    if yt.shape != (n,):
        raise MetricInputError(f"y_true shape {yt.shape} does not match y_prob shape {yp.shape}; expected ({n},)")
    if task == "binary" and c != 2:
        raise MetricInputError(f"binary task needs y_prob with 2 columns (softmax), got shape {yp.shape}")
    if task == "multiclass" and c < 2:
        raise MetricInputError(f"multiclass task needs y_prob with >= 2 columns, got shape {yp.shape}")
    if not np.all(np.equal(np.mod(yt, 1), 0)):
        raise MetricInputError("y_true must hold integer class indices")
    yt = yt.astype(np.int64)
    if yt.min() < 0 or yt.max() >= c:
        raise MetricInputError(f"y_true labels must lie in [0, {c - 1}], got range [{yt.min()}, {yt.max()}]")
    return yt, yp


def predict(y_prob: np.ndarray, task: str) -> np.ndarray:
    """Hard predictions: argmax for single-label tasks, ``prob > 0.5`` per label for multilabel."""
    if task == "multilabel":
        return (y_prob > MULTILABEL_THRESHOLD).astype(np.int64)
    return np.argmax(y_prob, axis=1).astype(np.int64)


def resolve_class_names(class_names: Sequence[str] | None, n_classes: int) -> list[str]:
    """Default names are the class indices; a wrong count is an error rather than a silent mislabel."""
    if class_names is None:
        return [str(i) for i in range(n_classes)]
    names = [str(n) for n in class_names]
    if len(names) != n_classes:
        raise MetricInputError(f"class_names has {len(names)} names but the data has {n_classes} classes")
    return names


# ------------------------------------------------------------------------------------------ weighted kernels
def _group_sums(w: np.ndarray, keys: np.ndarray, n_keys: int) -> np.ndarray:
    """Sum the weight columns ``w[:, i]`` by integer ``keys[i]``: (B, N) -> (B, n_keys), O(B*N)."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    out = np.zeros((w.shape[0], n_keys))
    out[:, sorted_keys[starts]] = np.add.reduceat(w[:, order], starts, axis=1)
    return out


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Elementwise num/den with 0 where den == 0 (scikit-learn's ``zero_division=0``)."""
    out = np.zeros(np.broadcast(num, den).shape)
    np.divide(num, den, out=out, where=den > 0)
    return out


def weighted_auc(w: np.ndarray, scores: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """ROC AUC (Mann-Whitney, ties count 1/2) for each row of sample weights ``w``; NaN if one class is absent."""
    uniq, inv = np.unique(scores, return_inverse=True)
    sums = _group_sums(w, inv * 2 + positive.astype(np.int64), 2 * len(uniq)).reshape(w.shape[0], -1, 2)
    neg, pos = sums[..., 0], sums[..., 1]
    below = np.cumsum(neg, axis=1) - neg
    num = np.sum(pos * (below + 0.5 * neg), axis=1)
    den = pos.sum(axis=1) * neg.sum(axis=1)
    out = np.full(w.shape[0], np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _per_class_auc(w: np.ndarray, y_true: np.ndarray, y_prob: np.ndarray, task: str) -> np.ndarray:
    """One-vs-rest AUC per class / label: (B, C)."""
    if task == "multilabel":
        cols = [weighted_auc(w, y_prob[:, k], y_true[:, k] == 1) for k in range(y_prob.shape[1])]
    else:
        cols = [weighted_auc(w, y_prob[:, k], y_true == k) for k in range(y_prob.shape[1])]
    return np.stack(cols, axis=1)


def _counts(w: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, task: str) -> dict[str, np.ndarray]:
    """Per-class tp/fp/fn/tn, each (B, C), plus the weighted confusion matrices ``cm``."""
    b = w.shape[0]
    if task == "multilabel":
        cells = np.stack([_group_sums(w, y_true[:, j] * 2 + y_pred[:, j], 4) for j in range(n_classes)], axis=1)
        tn, fp, fn, tp = (cells[..., i] for i in range(4))
        return {"tp": tp, "fp": fp, "fn": fn, "tn": tn, "cm": cells.reshape(b, n_classes, 2, 2)}
    cm = _group_sums(w, y_true * n_classes + y_pred, n_classes * n_classes).reshape(b, n_classes, n_classes)
    tp = np.diagonal(cm, axis1=1, axis2=2)
    support = cm.sum(axis=2)
    predicted = cm.sum(axis=1)
    fn = support - tp
    fp = predicted - tp
    tn = cm.sum(axis=(1, 2))[:, None] - tp - fn - fp
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn, "cm": cm}


def _masked_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Row-wise mean over entries where ``mask`` holds; 0 where nothing does."""
    return _safe_div(np.sum(values * mask, axis=1), mask.sum(axis=1))


def _balanced_accuracy(k: dict[str, np.ndarray], task: str) -> np.ndarray:
    """Mean recall over classes present in y_true (per label: mean of TPR and TNR, averaged over labels)."""
    support = k["tp"] + k["fn"]
    recall = _safe_div(k["tp"], support)
    if task != "multilabel":
        return _masked_mean(recall, support > 0)
    negatives = k["tn"] + k["fp"]
    specificity = _safe_div(k["tn"], negatives)
    per_label = _safe_div(recall * (support > 0) + specificity * (negatives > 0), (support > 0) * 1.0 + (negatives > 0))
    return per_label.mean(axis=1)


def per_class_scores(k: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support per class: each (B, C)."""
    tp, fp, fn = k["tp"], k["fp"], k["fn"]
    return {
        "precision": _safe_div(tp, tp + fp),
        "recall": _safe_div(tp, tp + fn),
        "f1": _safe_div(2 * tp, 2 * tp + fp + fn),
        "support": tp + fn,
    }


def scalar_metrics_weighted(
    w: np.ndarray, y_true: np.ndarray, y_prob: np.ndarray, task: str
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Every scalar metric for each row of sample weights ``w`` (B, N).

    Returns:
        ``(scalars, parts)``: scalars maps each name in SCALAR_METRICS to a (B,) array; parts holds the per-class
        arrays (counts, precision/recall/f1/support, auc) that compute_metrics reports.
    """
    n_classes = y_prob.shape[1]
    k = _counts(w, y_true, predict(y_prob, task), n_classes, task)
    pc = per_class_scores(k)
    total_support = pc["support"].sum(axis=1)
    out: dict[str, np.ndarray] = {}
    if task == "multilabel":
        out["acc"] = _safe_div(k["tp"] + k["tn"], w.sum(axis=1)[:, None]).mean(axis=1)
    else:
        out["acc"] = _safe_div(k["tp"].sum(axis=1), w.sum(axis=1))
    out["bacc"] = _balanced_accuracy(k, task)
    for name in ("precision", "recall", "f1"):
        out[f"{name}_weighted"] = _safe_div(np.sum(pc[name] * pc["support"], axis=1), total_support)
        out[f"{name}_macro"] = pc[name].mean(axis=1)
    auc_per_class = _per_class_auc(w, y_true, y_prob, task)
    out["auc"] = auc_per_class[:, 1] if task == "binary" else auc_per_class.mean(axis=1)
    out["avg"] = np.mean([out[m] for m in _AVG_PARTS], axis=0)
    return {m: out[m] for m in SCALAR_METRICS}, {**k, **pc, "auc": auc_per_class}


# --------------------------------------------------------------------------------------------------- public
def _warn_undefined_auc(auc_per_class: np.ndarray, names: list[str], task: str) -> None:
    """AUC needs both classes; say which class lacked one instead of crashing mid-evaluation."""
    missing = [names[i] for i in np.flatnonzero(np.isnan(auc_per_class))]
    if task == "binary":
        missing = missing[1:] if len(missing) == 2 else missing
    if missing:
        log.warning("AUC undefined (only one class present in y_true) for class(es) %s; reporting NaN", missing)


def compute_metrics(
    y_true: np.ndarray,
    y_prob: np.ndarray,
    task: Task,
    class_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """All evaluation metrics of one model on one split, as plain JSON-friendly Python values.

    Args:
        y_true: (N,) class indices, or (N, K) 0/1 for multilabel.
        y_prob: (N, C) softmax probabilities (binary: C == 2), or (N, K) sigmoid probabilities for multilabel.
        task: "binary", "multiclass" or "multilabel".
        class_names: names for the C classes / K labels; defaults to "0", "1", ...

    Returns:
        The SCALAR_METRICS as floats (AUC is NaN when undefined), ``confusion_matrix`` (rows = true, columns =
        predicted; a [[tn, fp], [fn, tp]] matrix per label for multilabel), ``n`` and ``per_class``
        (precision, recall, f1, support, auc per class name).
    """
    yt, yp = validate_inputs(y_true, y_prob, task)
    names = resolve_class_names(class_names, yp.shape[1])
    scalars, parts = scalar_metrics_weighted(np.ones((1, yp.shape[0])), yt, yp, task)
    _warn_undefined_auc(parts["auc"][0], names, task)
    result: dict[str, Any] = {m: float(v[0]) for m, v in scalars.items()}
    result["confusion_matrix"] = np.rint(parts["cm"][0]).astype(int).tolist()
    result["n"] = int(yp.shape[0])
    result["per_class"] = {
        name: {
            "precision": float(parts["precision"][0, i]),
            "recall": float(parts["recall"][0, i]),
            "f1": float(parts["f1"][0, i]),
            "support": int(round(parts["support"][0, i])),
            "auc": float(parts["auc"][0, i]),
        }
        for i, name in enumerate(names)
    }
    return result


def roc_points(
    y_true: np.ndarray,
    y_prob: np.ndarray,
    task: Task,
    class_names: Sequence[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """One-vs-rest ROC curves per class name (binary: one curve, for class 1), for plotting.

    Classes whose curve is undefined (no positives or no negatives) are left out with a logged warning.

    Returns:
        ``{name: {"fpr": [...], "tpr": [...], "thresholds": [...], "auc": float}}`` (thresholds decreasing).
    """
    from sklearn.metrics import roc_curve

    yt, yp = validate_inputs(y_true, y_prob, task)
    names = resolve_class_names(class_names, yp.shape[1])
    columns = [1] if task == "binary" else list(range(yp.shape[1]))
    curves: dict[str, dict[str, Any]] = {}
    for k in columns:
        positive = yt[:, k] == 1 if task == "multilabel" else yt == k
        if positive.all() or not positive.any():
            log.warning("ROC curve undefined for class %r (only one class present); skipped", names[k])
            continue
        fpr, tpr, thresholds = roc_curve(positive, yp[:, k])
        auc = weighted_auc(np.ones((1, len(positive))), yp[:, k], positive)[0]
        # sklearn's first threshold (nothing predicted positive) is inf: 1.0 keeps metrics.json valid JSON
        curves[names[k]] = {"fpr": fpr.tolist(), "tpr": tpr.tolist(),
                            "thresholds": np.minimum(thresholds, 1.0).tolist(), "auc": float(auc)}
    return curves

