from __future__ import annotations

import pytest

from medopt.compress.budget import back_off, ratio_schedule
from medopt.compress.errors import CompressError


def test_ratio_schedule() -> None:
    assert ratio_schedule(0.5, 0.1, 0.1) == [0.5, 0.4, 0.3, 0.2, 0.1]
    assert ratio_schedule(0.3, 0.1, 0.3) == [0.3]
    assert ratio_schedule(0.2, 0.1, 0.05) == [0.2, 0.1, 0.05]  # the mildest allowed ratio always ends the list
    assert ratio_schedule(0.3, 0.2, 0.1) == [0.3, 0.1]
    with pytest.raises(CompressError, match="min_ratio"):
        ratio_schedule(0.5, 0.1, 0.6)


def _accuracy(ratio: float) -> tuple[str, float]:
    """A model that keeps 0.90 bacc up to 30% pruning and then degrades 0.1 per 10 points."""
    return f"model@{ratio}", 0.90 - max(0.0, ratio - 0.3) * 1.0


def test_tight_budget_backs_off_to_a_smaller_ratio() -> None:
    result = back_off([0.5, 0.4, 0.3, 0.2], _accuracy, baseline_bacc=0.90, budget=0.01)
    assert result.within_budget and result.ratio == 0.3 and result.value == "model@0.3"
    assert [a["ratio"] for a in result.attempts] == [0.5, 0.4, 0.3]
    assert [a["within_budget"] for a in result.attempts] == [False, False, True]
    assert result.attempts[0]["val_bacc_loss"] == pytest.approx(0.2)


def test_loose_budget_keeps_the_named_ratio() -> None:
    result = back_off([0.5, 0.4], _accuracy, baseline_bacc=0.90, budget=0.25)
    assert result.ratio == 0.5 and len(result.attempts) == 1


def test_no_ratio_fits_reports_the_mildest_attempt() -> None:
    result = back_off([0.5, 0.4], _accuracy, baseline_bacc=0.95, budget=0.0)
    assert not result.within_budget and result.ratio == 0.4 and len(result.attempts) == 2
