from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from medopt.pipeline.runner import PipelineFailed, compile_pipeline, run_pipeline
from medopt.store import LocalStore

REPO = Path(__file__).resolve().parents[2]


def test_compiled_pipeline_matches_golden(tmp_path: Path) -> None:
    out = compile_pipeline(tmp_path / "p.yaml")
    golden = REPO / "pipelines" / "medopt_pipeline.yaml"
    assert list(yaml.safe_load_all(out.read_text())) == list(yaml.safe_load_all(golden.read_text())), (
        "pipeline changed: run `medopt pipeline compile` and commit pipelines/medopt_pipeline.yaml"
    )
    spec, platform = yaml.safe_load_all(out.read_text())  # the PipelineSpec, then its Kubernetes platform spec
    assert set(platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]) == set(
        spec["deploymentSpec"]["executors"])
    for executor in spec["deploymentSpec"]["executors"].values():
        assert executor["container"]["image"].startswith("ghcr.io/medopt/medopt:")
        assert "pip install" not in " ".join(executor["container"]["command"])


def _assert_run_complete(outcome, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = LocalStore(tmp_path / "store")
    keys = store.list(f"runs/{outcome.run_id}")
    assert {k.rsplit("/", 2)[-2] + "/" + k.rsplit("/", 1)[-1] for k in keys} == {
        "data/dataset.npz", "train/model.pt", "train/history.json", "evaluate/metrics.json", "evaluate/report.html",
        "deploy/inferenceservice.yaml"}
    for key in keys:
        store.verify(key)
    model = store.manifest(f"runs/{outcome.run_id}/train/model.pt")
    assert model.parents == (f"runs/{outcome.run_id}/data/dataset.npz",)
    assert model.config["model"]["name"] == "tiny_cnn"
    assert 0.0 <= outcome.metrics["metrics"]["auc"] <= 1.0
    assert (outcome.run_dir / "config.yaml").is_file() and outcome.report_path.is_file()


def test_inprocess_run_end_to_end(tmp_path: Path, pipeline_cfg) -> None:  # type: ignore[no-untyped-def]
    outcome = run_pipeline(pipeline_cfg("inprocess"))
    _assert_run_complete(outcome, tmp_path)


def test_failure_names_the_cause_and_the_log(tmp_path: Path, pipeline_cfg) -> None:  # type: ignore[no-untyped-def]
    cfg = pipeline_cfg("inprocess", "data.source=medmnist", f"data.path={tmp_path / 'missing.npz'}")
    with pytest.raises(PipelineFailed) as info:
        run_pipeline(cfg)
    assert "missing.npz" in str(info.value) and "run.log" in str(info.value)


@pytest.mark.integration
@pytest.mark.slow
def test_kfp_local_run_with_the_s3_store(tmp_path: Path, s3_env, pipeline_cfg) -> None:  # type: ignore[no-untyped-def]
    """Every artifact of a KFP run lands in the bucket with its manifest; re-reading verifies each hash."""
    import hashlib

    from medopt.store import open_store

    cfg = pipeline_cfg("kfp-local", "store.kind=s3", f"store.endpoint={s3_env.endpoint}",
                       f"store.bucket={s3_env.bucket}", "store.secure=false", "store.prefix=pipeline-test")
    outcome = run_pipeline(cfg)
    assert outcome.store_uri == f"s3://{s3_env.bucket}/pipeline-test"
    store = open_store(cfg.store)
    keys = store.list(f"runs/{outcome.run_id}")
    assert len(keys) == 6  # data, model, history, metrics, report, deploy manifest
    for key in keys:
        manifest = store.verify(key)
        assert hashlib.sha256(store.get_bytes(key)).hexdigest() == manifest.sha256
    names = {o.object_name for o in s3_env.client().list_objects(s3_env.bucket, recursive=True)}
    assert all(f"pipeline-test/{k}" in names and f"pipeline-test/{k}.manifest.json" in names for k in keys)
    assert outcome.report_path is not None and outcome.report_path.is_file()


@pytest.mark.integration
@pytest.mark.slow
def test_ray_train_run_keeps_checkpoints_in_the_s3_store(  # type: ignore[no-untyped-def]
    tmp_path: Path, s3_env, pipeline_cfg
) -> None:
    """train.backend=ray on an S3 store: Ray's checkpoints go to the bucket and the final state is an artifact."""
    from medopt.store import open_store

    cfg = pipeline_cfg("inprocess", "train.backend=ray", "store.kind=s3", f"store.endpoint={s3_env.endpoint}",
                       f"store.bucket={s3_env.bucket}", "store.secure=false", "store.prefix=ray-test",
                       "evaluate.report=false")
    outcome = run_pipeline(cfg)
    store = open_store(cfg.store)
    keys = store.list(f"runs/{outcome.run_id}")
    assert f"runs/{outcome.run_id}/train/checkpoint.pt" in keys
    for key in keys:
        store.verify(key)
    assert store.manifest(f"runs/{outcome.run_id}/train/model.pt").parents[-1].endswith("train/checkpoint.pt")
    ray_objects = [o.object_name for o in s3_env.client().list_objects(
        s3_env.bucket, prefix=f"ray-test/runs/{outcome.run_id}/ray_results/", recursive=True)]
    assert any(name.endswith("training_state.pt") for name in ray_objects), ray_objects[:10]
