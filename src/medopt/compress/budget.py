"""Accuracy-budget enforcement: back off a compression ratio until validation balanced accuracy is within budget.

Why: a recipe name states an ambition ("prune50"); the budget states what may be lost. The compressor tries the
named ratio first, then smaller ones, and records every attempt so the report shows what was given up and why.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from medopt.compress.errors import CompressError

logger = logging.getLogger(__name__)

T = TypeVar("T")
#: Float slack so a loss equal to the budget (up to rounding) counts as within it.
_EPS = 1e-9


def ratio_schedule(start: float, step: float, min_ratio: float) -> list[float]:
    """``start, start - step, ...``, always ending at ``min_ratio``: 0.2, 0.1, 0.05 for a min_ratio of 0.05.

    Why end there: the mildest ratio the config allows is always tried before the budget gives up.
    """
    if not 0 < min_ratio <= start < 1 or step <= 0:
        raise CompressError(f"ratio schedule needs 0 < min_ratio <= start < 1 and step > 0, got {min_ratio}, "
                            f"{start}, {step}")
    out, k = [], 0
    while True:
        r = round(start - k * step, 6)
        if r < min_ratio - _EPS:
            return out if abs(out[-1] - min_ratio) <= _EPS else [*out, round(min_ratio, 6)]
        out.append(r)
        k += 1


@dataclass(frozen=True)
class BackoffResult(Generic[T]):
    """The accepted (or, if none fit, the last tried) candidate, its ratio and every attempt made."""

    value: T
    ratio: float
    val_bacc: float
    within_budget: bool
    attempts: list[dict[str, float | bool]] = field(default_factory=list)


def within_budget(baseline_bacc: float, bacc: float, budget: float) -> bool:
    """True when ``baseline - bacc <= budget`` (a gain is always within)."""
    return baseline_bacc - bacc <= budget + _EPS


def back_off(
    ratios: list[float],
    attempt: Callable[[float], tuple[T, float]],
    *,
    baseline_bacc: float,
    budget: float,
) -> BackoffResult[T]:
    """Try ``attempt(ratio) -> (candidate, val_bacc)`` for each ratio in order; accept the first within budget.

    When no ratio meets the budget, the last attempt (the mildest) is returned with ``within_budget=False``.
    """
    if not ratios:
        raise CompressError("back_off: no ratios to try")
    attempts: list[dict[str, float | bool]] = []
    for ratio in ratios:
        value, bacc = attempt(ratio)
        ok = within_budget(baseline_bacc, bacc, budget)
        attempts.append({"ratio": ratio, "val_bacc": bacc, "val_bacc_loss": baseline_bacc - bacc, "within_budget": ok})
        logger.info("ratio %.2f: val bacc %.4f (baseline %.4f, budget %.4f) -> %s", ratio, bacc, baseline_bacc,
                    budget, "accepted" if ok else "backing off")
        if ok:
            return BackoffResult(value, ratio, bacc, True, attempts)
    logger.warning("no ratio in %s met the accuracy budget %.4f; keeping %.2f", ratios, budget, ratios[-1])
    return BackoffResult(value, ratios[-1], bacc, False, attempts)
