"""What a component does in its pod before the step body: the pipeline parameters become one config and a run id."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medopt.config import ConfigError, load_config
from medopt.pipeline.inprocess import LocalArtifact
from medopt.pipeline.kfp_entry import (
    CLUSTER_ENV, ComponentInputError, Overrides, effective_run_id, parse_config_text, resolve_config, run_component,
)
from medopt.pipeline.step_list import step_named
from medopt.store import LocalStore

BLOCK_YAML = """# a comment line, as `cat configs/x.yaml` gives
name: trial
model:
  name: tiny_cnn
train: {epochs: 3}
"""


@pytest.mark.parametrize(
    "text",
    [BLOCK_YAML, json.dumps({"name": "trial", "model": {"name": "tiny_cnn"}, "train": {"epochs": 3}}),
     {"name": "trial", "model": {"name": "tiny_cnn"}, "train": {"epochs": 3}}],
    ids=["block-yaml", "json-text", "mapping-the-kfp-cli-decoded"],
)
def test_config_text_forms_give_the_same_config(text: object) -> None:
    cfg = resolve_config(text, Overrides(), in_cluster=False)  # type: ignore[arg-type]
    assert (cfg.name, cfg.model.name, cfg.train.epochs) == ("trial", "tiny_cnn", 3)


def test_empty_config_text_is_the_defaults() -> None:
    assert parse_config_text("") == parse_config_text("  \n") == parse_config_text(None) == {}


@pytest.mark.parametrize(("text", "expected"), [("[1, 2]", "must be a YAML mapping"), ("a: [1", "not valid YAML"),
                                                ("42", "got int")])
def test_unusable_config_text_fails_in_one_line(text: str, expected: str) -> None:
    with pytest.raises(ComponentInputError, match=expected):
        parse_config_text(text)


def test_overrides_apply_typed_and_not_set_values_leave_the_config_alone() -> None:
    text = BLOCK_YAML + "data: {source: medmnist, path: /d/x.npz}\n"
    cfg = resolve_config(text, Overrides(model_name="resnet18", epochs=7, data_source="synthetic", seed=11),
                         in_cluster=False)
    assert (cfg.model.name, cfg.train.epochs, cfg.data.source, cfg.seed) == ("resnet18", 7, "synthetic", 11)
    same = resolve_config(BLOCK_YAML, Overrides(), in_cluster=False)
    assert (same.model.name, same.train.epochs, same.seed) == ("tiny_cnn", 3, 0)
    assert Overrides(seed=0).fields() == {"seed": 0}  # 0 is a seed; only -1 means "not set"
    with pytest.raises(ComponentInputError, match="epochs"):
        Overrides(epochs=-2).fields()
    with pytest.raises(ConfigError, match="data.source"):
        resolve_config(BLOCK_YAML, Overrides(data_source="moon"), in_cluster=False)


def test_in_a_cluster_a_local_store_becomes_the_kfp_store_and_s3_is_kept() -> None:
    cfg = resolve_config(BLOCK_YAML, Overrides(), in_cluster=True)
    assert (cfg.store.kind, cfg.store.endpoint, cfg.store.bucket) == ("s3", "minio.medopt.svc:9000", "medopt")
    assert resolve_config(BLOCK_YAML, Overrides(), in_cluster=False).store.kind == "local"
    own = "store: {kind: s3, endpoint: 's3.example.org:443', bucket: mine}\n"
    assert resolve_config(own, Overrides(), in_cluster=True).store.endpoint == "s3.example.org:443"


def test_run_id_the_users_else_the_kfp_runs_for_per_run_steps_else_fresh() -> None:
    cfg = load_config(None, ["name=trial"])
    data, evaluate = step_named("data"), step_named("evaluate")
    assert effective_run_id(data, cfg, "r-7", "job-uuid") == "r-7"
    assert effective_run_id(data, cfg, 20250101) == "20250101"  # `kfp run create run_id=20250101` sends an int
    assert effective_run_id(evaluate, cfg, "", "0b7c-uuid") == "0b7c-uuid"
    fresh = {effective_run_id(data, cfg, "", "0b7c-uuid") for _ in range(3)}
    assert len(fresh) == 3 and all(r.startswith("trial-") for r in fresh)  # never the job id; never reused
    assert effective_run_id(evaluate, cfg, "", "{{$.pipeline_job_uuid}}").startswith("trial-")  # unresolved
    with pytest.raises(ComponentInputError, match="run_id"):
        effective_run_id(data, cfg, "../escape", "")


def test_run_component_runs_the_step_under_the_resolved_run_id(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CLUSTER_ENV, raising=False)
    text = (f"model: {{name: tiny_cnn}}\nstore: {{root: '{tmp_path / 'store'}'}}\n"
            "data: {synthetic: {num_samples: 40, image_size: 8}, preprocess: {image_size: 8}}\n")
    dataset = LocalArtifact(str(tmp_path / "dataset"))
    assert run_component("data", text, "", overrides=Overrides(seed=3), dataset=dataset) is True
    key = json.loads(Path(dataset.path).read_text())["key"]
    assert key.startswith("runs/experiment-") and key.endswith("/data/dataset.npz")
    assert LocalStore(tmp_path / "store").manifest(key).config["seed"] == 3
