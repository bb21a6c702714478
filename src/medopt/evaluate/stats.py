"""Uncertainty and paired significance tests for comparing models on the same test set.

Why: a compressed model is only "as good as" its baseline if the difference is within noise; bootstrap CIs put
error bars on every metric, and McNemar (accuracy) / DeLong (AUC) test paired differences on the same samples.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
import numpy as np

from medopt.errors import MedoptError
from medopt.evaluate.metrics import SCALAR_METRICS, Task, scalar_metrics_weighted, validate_inputs

log = logging.getLogger(__name__)

#: Largest (resamples x samples) weight matrix held at once; bounds bootstrap memory to ~32 MB.
_CHUNK_CELLS = 4_000_000
#: McNemar switches from the exact binomial test to chi-square at this many discordant pairs.
_EXACT_BELOW = 25


class StatsInputError(MedoptError, ValueError):
    """Arguments to a statistical test are malformed (shapes, levels, too few samples)."""


# --------------------------------------------------------------------------------------------------- bootstrap
def _strata(y_true: np.ndarray, task: str) -> list[np.ndarray]:
    """Sample indices per stratum: one per class for single-label tasks, everything for multilabel.

    Stratifying by class keeps each class's count fixed, so AUC stays defined in every resample. Multilabel rows
    are resampled as a whole (stratifying on label combinations would freeze rare combinations and shrink CIs);
    resamples where a metric is undefined are then dropped from its percentiles.
    """
    if task == "multilabel":
        return [np.arange(len(y_true))]
    return [np.flatnonzero(y_true == c) for c in np.unique(y_true)]


def _resample_weights(rng: np.random.Generator, strata: list[np.ndarray], n: int, b: int) -> np.ndarray:
    """(b, n) counts of how often each sample is drawn in each stratified resample."""
    flat = []
    offsets = (np.arange(b) * n)[:, None]
    for idx in strata:
        draws = idx[rng.integers(0, len(idx), size=(b, len(idx)))]
        flat.append((draws + offsets).ravel())
    return np.bincount(np.concatenate(flat), minlength=b * n).reshape(b, n).astype(np.float64)


def _check_bootstrap_args(n_resamples: int, level: float, metrics: Sequence[str]) -> None:
    if n_resamples < 1:
        raise StatsInputError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0 < level < 1:
        raise StatsInputError(f"level must lie in (0, 1), got {level}")
    unknown = [m for m in metrics if m not in SCALAR_METRICS]
    if unknown:
        raise StatsInputError(f"unknown metric(s) {unknown}; valid: {list(SCALAR_METRICS)}")


def bootstrap_ci(
    y_true: np.ndarray,
    y_prob: np.ndarray,
    task: Task,
    *,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    metrics: Sequence[str] = SCALAR_METRICS,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap confidence intervals, resampling within each class.

    All resamples are evaluated at once from per-sample draw counts (no Python loop over resamples), so 1000
    resamples of a few hundred samples take well under a second.

    Returns:
        ``{metric: (low, high)}``; (NaN, NaN) when a metric is undefined in every resample.
    """
    _check_bootstrap_args(n_resamples, level, metrics)
    yt, yp = validate_inputs(y_true, y_prob, task)
    n = yp.shape[0]
    strata = _strata(yt, task)
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_CELLS // n)
    values: dict[str, list[np.ndarray]] = {m: [] for m in metrics}
    for start in range(0, n_resamples, chunk):
        w = _resample_weights(rng, strata, n, min(chunk, n_resamples - start))
        scalars, _ = scalar_metrics_weighted(w, yt, yp, task)
        for m in metrics:
            values[m].append(scalars[m])
    tail = 100.0 * (1.0 - level) / 2.0
    out: dict[str, tuple[float, float]] = {}
    for m in metrics:
        v = np.concatenate(values[m])
        finite = v[np.isfinite(v)]
        if len(finite) < len(v):
            log.warning("bootstrap: %s undefined in %d of %d resamples; ignored", m, len(v) - len(finite), len(v))
        if len(finite) == 0:
            out[m] = (math.nan, math.nan)
            continue
        low, high = np.percentile(finite, [tail, 100.0 - tail])
        out[m] = (float(low), float(high))
    return out


# ----------------------------------------------------------------------------------------------------- McNemar
def _correct(y_true: np.ndarray, pred: np.ndarray, name: str) -> np.ndarray:
    """Per-sample correctness; a multilabel row counts as correct only if every label is right."""
    p = np.asarray(pred)
    if p.ndim == 2 and p.shape[1] == 1 and y_true.ndim == 1:
        p = p[:, 0]
    if p.shape != y_true.shape:
        raise StatsInputError(f"{name} shape {p.shape} does not match y_true shape {y_true.shape}")
    hit = p == y_true
    return hit.all(axis=1) if hit.ndim == 2 else hit


def mcnemar_test(y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> dict[str, float]:
    """Paired test of two classifiers' accuracy on the same samples.

    ``b`` counts samples model A gets right and model B wrong, ``c`` the reverse. With fewer than 25 discordant
    pairs the exact two-sided binomial test is used (statistic = min(b, c)); otherwise chi-square with continuity
    correction, (|b - c| - 1)^2 / (b + c), on 1 degree of freedom.

    Returns:
        ``{"statistic", "p_value", "b", "c"}``.
    """
    from scipy import stats

    yt = np.asarray(y_true)
    if yt.ndim == 2 and yt.shape[1] == 1:
        yt = yt[:, 0]
    if yt.ndim not in (1, 2) or len(yt) == 0:
        raise StatsInputError(f"y_true must be (N,) or (N, K) with N >= 1, got shape {yt.shape}")
    ok_a, ok_b = _correct(yt, pred_a, "pred_a"), _correct(yt, pred_b, "pred_b")
    b = int(np.sum(ok_a & ~ok_b))
    c = int(np.sum(~ok_a & ok_b))
    if b + c == 0:
        return {"statistic": 0.0, "p_value": 1.0, "b": b, "c": c}
    if b + c < _EXACT_BELOW:
        statistic = float(min(b, c))
        p_value = min(1.0, 2.0 * float(stats.binom.cdf(min(b, c), b + c, 0.5)))
    else:
        statistic = (abs(b - c) - 1.0) ** 2 / (b + c)
        p_value = float(stats.chi2.sf(statistic, df=1))
    return {"statistic": statistic, "p_value": p_value, "b": b, "c": c}


# ------------------------------------------------------------------------------------------------------ DeLong
def _midranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks along the last axis, ties sharing their average rank."""
    from scipy.stats import rankdata

    return rankdata(x, method="average", axis=-1)


def delong_auc_cov(positives: np.ndarray, negatives: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUCs and their covariance matrix by the fast DeLong algorithm (Sun & Xu, 2014).

    Args:
        positives: (k, m) scores of the m positive samples under k models.
        negatives: (k, n) scores of the n negative samples under the same models.

    Returns:
        ``(aucs (k,), cov (k, k))``.
    """
    m, n = positives.shape[1], negatives.shape[1]
    tx, ty = _midranks(positives), _midranks(negatives)
    tz = _midranks(np.concatenate([positives, negatives], axis=1))
    aucs = tz[:, :m].sum(axis=1) / (m * n) - (m + 1.0) / (2.0 * n)
    v10 = (tz[:, :m] - tx) / n  # structural components of the positives
    v01 = 1.0 - (tz[:, m:] - ty) / m  # ... and of the negatives
    cov = np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n
    return aucs, cov


def _binary_scores(prob: np.ndarray, n: int, name: str) -> np.ndarray:
    """Accept (N,) positive-class scores or (N, 2) softmax probabilities (column 1 is used)."""
    p = np.asarray(prob, dtype=np.float64)
    if p.ndim == 2 and p.shape[1] == 2:
        p = p[:, 1]
    if p.shape != (n,):
        raise StatsInputError(f"{name} must have shape ({n},) or ({n}, 2), got {p.shape}")
    if not np.all(np.isfinite(p)):
        raise StatsInputError(f"{name} contains NaN or infinite values")
    return p


def delong_test(y_true: np.ndarray, prob_a: np.ndarray, prob_b: np.ndarray) -> dict[str, float]:
    """Paired two-sided DeLong test that two binary classifiers have the same ROC AUC on the same samples.

    Returns:
        ``{"auc_a", "auc_b", "z", "p_value"}``; z > 0 means model A has the higher AUC.
    """
    from scipy.stats import norm

    yt = np.asarray(y_true)
    if yt.ndim == 2 and yt.shape[1] == 1:
        yt = yt[:, 0]
    if yt.ndim != 1 or not np.isin(yt, (0, 1)).all():
        raise StatsInputError(f"y_true must be (N,) binary 0/1 labels, got shape {yt.shape}")
    pos = yt == 1
    if pos.sum() < 2 or (~pos).sum() < 2:
        raise StatsInputError(
            f"DeLong test needs >= 2 samples of each class, got {pos.sum()} positive and {(~pos).sum()} negative"
        )
    scores = np.stack([_binary_scores(prob_a, len(yt), "prob_a"), _binary_scores(prob_b, len(yt), "prob_b")])
    aucs, cov = delong_auc_cov(scores[:, pos], scores[:, ~pos])
    diff = float(aucs[0] - aucs[1])
    var = float(cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1])
    if var <= 1e-15:
        z = 0.0 if abs(diff) < 1e-12 else math.copysign(math.inf, diff)
    else:
        z = diff / math.sqrt(var)
    return {"auc_a": float(aucs[0]), "auc_b": float(aucs[1]), "z": z, "p_value": float(2.0 * norm.sf(abs(z)))}


# -------------------------------------------------------------------------------------------- equivalence (TOST)
def _paired_bacc_diffs(yt: np.ndarray, pa: np.ndarray, pb: np.ndarray, task: str, n_resamples: int,
                       seed: int) -> np.ndarray:
    """bacc(B) - bacc(A) in each stratified resample, both models scored on the same drawn samples."""
    strata, n = _strata(yt, task), len(yt)
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_CELLS // n)
    diffs = []
    for start in range(0, n_resamples, chunk):
        w = _resample_weights(rng, strata, n, min(chunk, n_resamples - start))
        diffs.append(scalar_metrics_weighted(w, yt, pb, task)[0]["bacc"]
                     - scalar_metrics_weighted(w, yt, pa, task)[0]["bacc"])
    return np.concatenate(diffs)


def tost_bacc(
    y_true: np.ndarray,
    prob_a: np.ndarray,
    prob_b: np.ndarray,
    task: Task,
    *,
    margin: float = 0.01,
    alpha: float = 0.05,
    n_resamples: int = 2000,
    seed: int = 0,
) -> dict[str, float | bool | int]:
    """Two one-sided tests that model B's balanced accuracy is within ``margin`` of model A's (paired bootstrap).

    Why an equivalence test: "B lost at most 1 point" is a claim about the difference, and a McNemar test that
    fails to reject says only that the test set was too small to see one. Here each class-stratified resample of
    the test samples scores both models on the same samples, so the spread is that of their disagreement.
    Equivalence at level ``alpha`` when the (1 - 2 alpha) percentile interval of bacc_B - bacc_A lies inside
    (-margin, +margin); ``p_value`` is the larger of the two one-sided bootstrap p-values (the share of resamples
    at or beyond each bound).

    Returns:
        ``{"diff", "ci_low", "ci_high", "level", "margin", "p_lower", "p_upper", "p_value", "equivalent",
        "n_resamples"}``; ``diff`` is bacc_B - bacc_A on the samples as given.
    """
    if not margin > 0:
        raise StatsInputError(f"margin must be > 0, got {margin}")
    if not 0 < alpha < 0.5:
        raise StatsInputError(f"alpha must lie in (0, 0.5), got {alpha}")
    if n_resamples < 1:
        raise StatsInputError(f"n_resamples must be >= 1, got {n_resamples}")
    yt, pa = validate_inputs(y_true, prob_a, task)
    _, pb = validate_inputs(y_true, prob_b, task)
    if pa.shape != pb.shape:
        raise StatsInputError(f"prob_a shape {pa.shape} does not match prob_b shape {pb.shape}")
    ones = np.ones((1, len(yt)))
    diff = float(scalar_metrics_weighted(ones, yt, pb, task)[0]["bacc"][0]
                 - scalar_metrics_weighted(ones, yt, pa, task)[0]["bacc"][0])
    diffs = _paired_bacc_diffs(yt, pa, pb, task, n_resamples, seed)
    low, high = (float(v) for v in np.percentile(diffs, [100.0 * alpha, 100.0 * (1.0 - alpha)]))
    p_lower, p_upper = float(np.mean(diffs <= -margin)), float(np.mean(diffs >= margin))
    return {"diff": diff, "ci_low": low, "ci_high": high, "level": 1.0 - 2.0 * alpha, "margin": margin,
            "p_lower": p_lower, "p_upper": p_upper, "p_value": max(p_lower, p_upper),
            "equivalent": bool(-margin < low and high < margin), "n_resamples": int(n_resamples)}
