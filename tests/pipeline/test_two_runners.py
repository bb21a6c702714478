"""Both runners walk the same step list: with compress and federate on, they store the same artifact keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medopt.pipeline.runner import run_pipeline
from medopt.store import LocalStore

pytestmark = pytest.mark.integration

ALL_STEPS_ON = (
    "data.synthetic.num_samples=64", "train.epochs=1", "evaluate.report=false",
    "compress.enabled=true", "compress.recipes=[fp32-onnx]", "compress.num_threads=1",
    "compress.calibration_samples=16", "compress.pt2e_compile=false",
    "federate.enabled=true", "federate.rounds=1", "data.partition.num_clients=2", "federate.ray_num_cpus=2",
)


def _run_keys(cfg, tmp_path: Path) -> set[str]:  # type: ignore[no-untyped-def]
    """The run's store keys relative to its prefix, each verified against its manifest."""
    outcome = run_pipeline(cfg)
    store, prefix = LocalStore(tmp_path / "store"), f"runs/{outcome.run_id}/"
    keys = store.list(prefix.rstrip("/"))
    for key in keys:
        store.verify(key)
    return {key.removeprefix(prefix) for key in keys}


def test_kfp_local_and_inprocess_store_the_same_artifacts(  # type: ignore[no-untyped-def]
    tmp_path: Path, pipeline_cfg
) -> None:
    inprocess = _run_keys(pipeline_cfg("inprocess", *ALL_STEPS_ON), tmp_path)
    kfp_local = _run_keys(pipeline_cfg("kfp-local", *ALL_STEPS_ON), tmp_path)
    assert inprocess == kfp_local
    steps = {key.split("/", 1)[0] for key in inprocess}
    assert steps == {"data", "train", "compress", "federate", "deploy", "evaluate"}, sorted(inprocess)
    assert "compress/fp32-onnx/model.onnx" in inprocess and "compress/summary.json" in inprocess
