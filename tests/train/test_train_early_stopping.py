from __future__ import annotations

import math

import pytest

from medopt.train.early_stopping import EarlyStopping


def test_max_mode_stops_after_patience() -> None:
    es = EarlyStopping(patience=2, mode="max")
    improved = [es.update(e, s) for e, s in enumerate([0.5, 0.7, 0.7, 0.6])]
    assert improved == [True, True, False, False]
    assert es.should_stop and es.best_epoch == 1 and es.best_score == 0.7


def test_min_mode_and_reset_on_improvement() -> None:
    es = EarlyStopping(patience=2, mode="min")
    for e, s in enumerate([1.0, 1.1, 0.9, 0.95]):
        es.update(e, s)
    assert not es.should_stop and es.best_epoch == 2 and es.bad_epochs == 1


def test_nan_never_improves_and_none_patience_never_stops() -> None:
    es = EarlyStopping(patience=None, mode="max")
    for e, s in enumerate([math.nan, 0.4, math.nan] + [0.1] * 20):
        es.update(e, s)
    assert es.best_epoch == 1 and not es.should_stop


def test_min_delta() -> None:
    es = EarlyStopping(patience=1, mode="max", min_delta=0.05)
    es.update(0, 0.5)
    assert not es.update(1, 0.54) and es.should_stop


@pytest.mark.parametrize("kwargs", [{"patience": 0, "mode": "max"}, {"patience": 1, "mode": "up"}])
def test_invalid(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="early stopping"):
        EarlyStopping(**kwargs)
