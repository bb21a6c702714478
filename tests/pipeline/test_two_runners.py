"""Both runners walk the same step list: with compress and federate on, they store the same artifact keys.

This is also the kfp.local end-to-end test (progress events from the component subprocesses, refs in KFP's
artifacts), so kfp.local runs once per suite.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from medopt.pipeline.runner import RunOutcome, run_pipeline
from medopt.store import LocalStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ALL_STEPS_ON = (
    "data.synthetic.num_samples=64", "train.epochs=1", "evaluate.report=false",
    "compress.enabled=true", "compress.recipes=[fp32-onnx]", "compress.num_threads=1", "compress.pt2e_compile=false",
    "federate.enabled=true", "federate.rounds=1", "data.partition.num_clients=2", "federate.ray_num_cpus=2",
)


def _run(cfg: Any, tmp_path: Path) -> tuple[RunOutcome, set[str], list[dict[str, Any]]]:
    """The outcome, the run's store keys relative to its prefix (each verified) and the progress events."""
    events: list[dict[str, Any]] = []
    outcome = run_pipeline(cfg, on_progress=events.append)
    store, prefix = LocalStore(tmp_path / "store"), f"runs/{outcome.run_id}/"
    keys = store.list(prefix.rstrip("/"))
    for key in keys:
        store.verify(key)
    return outcome, {key.removeprefix(prefix) for key in keys}, events


def _stages(events: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [(e["stage"], e.get("epoch", e.get("round", e.get("done")))) for e in events]


def test_kfp_local_and_inprocess_store_the_same_artifacts(  # type: ignore[no-untyped-def]
    tmp_path: Path, pipeline_cfg
) -> None:
    inprocess, in_keys, in_events = _run(pipeline_cfg("inprocess", *ALL_STEPS_ON), tmp_path)
    kfp, kfp_keys, kfp_events = _run(pipeline_cfg("kfp-local", *ALL_STEPS_ON), tmp_path)

    assert in_keys == kfp_keys
    assert {key.split("/", 1)[0] for key in in_keys} == {"data", "train", "compress", "federate", "deploy", "evaluate"}
    assert {"compress/summary.json", "compress/fp32-onnx/model.onnx", "deploy/inferenceservice.yaml"} <= in_keys
    for outcome in (inprocess, kfp):
        assert 0.0 <= outcome.metrics["metrics"]["auc"] <= 1.0 and (outcome.run_dir / "config.yaml").is_file()
    assert sorted(_stages(in_events)) == sorted(_stages(kfp_events)) == [
        ("evaluate", True), ("federate", 1), ("train", 0)]
    for outcome, folder in ((inprocess, "steps"), (kfp, "kfp")):  # each runner's artifact files hold store refs
        dataset_refs = [p for p in (outcome.run_dir / folder).rglob("dataset") if p.is_file()]
        assert dataset_refs and json.loads(dataset_refs[0].read_text())["key"].endswith("data/dataset.npz")
