from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from medopt.pipeline import progress
from medopt.pipeline.refs import RefError, StoreRef
from medopt.pipeline.runner import captured_output, resolve_paths
from medopt.config import load_config


def test_progress_round_trip_and_noise() -> None:
    event = progress.epoch_event("train", 2, 5, {"val_auc": 0.9, "note": "x"})
    line = "12:00 INFO " + progress.MARKER + __import__("json").dumps(event)
    assert progress.parse(line) == {"stage": "train", "epoch": 2, "epochs": 5, "val_auc": 0.9}
    assert progress.parse("plain log line") is None
    assert progress.parse(progress.MARKER + "{not json") is None
    assert progress.parse(progress.MARKER + "[1, 2]") is None


def test_store_ref_round_trip_and_bad_file(tmp_path: Path) -> None:
    ref = StoreRef(store_uri="file:///s", key="runs/r/data/dataset.npz", sha256="ab" * 32, kind="dataset")
    ref.write(tmp_path / "a" / "ref")
    assert StoreRef.read(tmp_path / "a" / "ref") == ref
    (tmp_path / "bad").write_text('{"key": 1}')
    with pytest.raises(RefError, match="not a medopt store reference"):
        StoreRef.read(tmp_path / "bad")


def test_captured_output_goes_to_log_and_progress(tmp_path: Path) -> None:
    events: list[dict] = []
    log_path = tmp_path / "run.log"
    with captured_output(log_path, events.append):
        print("kfp chatter")
        sys.stderr.write("warning chatter\n")
        logging.getLogger("kfp.local").warning("library noise")
        progress.emit({"stage": "train", "epoch": 0, "epochs": 1})
    text = log_path.read_text()
    assert "kfp chatter" in text and "warning chatter" in text and "library noise" in text
    assert events == [{"stage": "train", "epoch": 0, "epochs": 1}]


def test_resolve_paths_makes_store_and_data_absolute(tmp_path: Path) -> None:
    cfg = load_config(None, ["data.source=medmnist", "data.path=d/x.npz", "store.root=arts", "output_dir=out"])
    resolved = resolve_paths(cfg, tmp_path)
    assert resolved.data.path == str(tmp_path / "d" / "x.npz")
    assert resolved.store.root == str(tmp_path / "arts") and resolved.output_dir == str(tmp_path / "out")
