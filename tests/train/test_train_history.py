from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from medopt.train.history import HistoryError, load_history, save_history


def test_round_trip_strict_json_with_nan(tmp_path: Path) -> None:
    path = save_history({"epoch": [0, 1], "val_auc": [math.nan, np.float32(0.75)]}, tmp_path / "sub" / "h.json")
    assert json.loads(path.read_text()) == {"epoch": [0, 1], "val_auc": [None, 0.75]}
    back = load_history(path)
    assert back["epoch"] == [0.0, 1.0] and math.isnan(back["val_auc"][0]) and back["val_auc"][1] == 0.75
    assert [p.name for p in path.parent.iterdir()] == ["h.json"]  # no temp file left behind


def test_failed_write_keeps_previous_file(tmp_path: Path) -> None:
    path = save_history({"a": [1.0]}, tmp_path / "h.json")
    with pytest.raises(HistoryError, match="equal lengths"):
        save_history({"a": [1.0, 2.0], "b": [1.0]}, path)
    with pytest.raises(HistoryError, match=r"history\['a'\]\[0\]"):
        save_history({"a": ["x"]}, path)
    assert load_history(path) == {"a": [1.0]}
    assert len(list(tmp_path.iterdir())) == 1


def test_load_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(HistoryError, match="object of lists"):
        load_history(bad)
    with pytest.raises(HistoryError, match="cannot read history"):
        load_history(tmp_path / "missing.json")
