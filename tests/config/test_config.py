from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from medopt.config import ConfigError, ExperimentConfig, apply_overrides, config_from_json, dump_yaml, json_schema, load_config

REPO = Path(__file__).resolve().parents[2]


def test_defaults_are_valid_and_frozen() -> None:
    cfg = load_config()
    assert cfg.train.optimizer == "adam" and cfg.data.split.train == 0.8
    with pytest.raises(ValidationError):
        cfg.train.epochs = 3  # type: ignore[misc]


def test_yaml_and_overrides(tmp_path: Path) -> None:
    p = tmp_path / "e.yaml"
    p.write_text("name: demo\ntrain: {epochs: 3}\n")
    cfg = load_config(p, ["train.lr=0.05", "data.augment.enabled=true", "evaluate.latency_batch_sizes=[1, 8]"])
    assert (cfg.name, cfg.train.epochs, cfg.train.lr) == ("demo", 3, 0.05)
    assert cfg.data.augment.enabled is True
    assert cfg.evaluate.latency_batch_sizes == (1, 8)


@pytest.mark.parametrize(
    ("text", "overrides", "expected"),
    [
        ("train: {epocs: 3}\n", [], "config error at train.epocs: unknown key"),
        ("train: {epochs: -1}\n", [], "config error at train.epochs: Input should be greater than or equal to 1"),
        ("", ["train.optimizer=rmsprop"], "config error at train.optimizer"),
        ("", ["data.split.train=0.5"], "train+val+test must sum to 1"),
        ("", ["data.source=medmnist"], "data.path is required for source 'medmnist'"),
        ("", ["trainepochs"], "must look like section.key=value"),
        ("train: {epochs: 3}\n", ["train.epochs.x=1"], "'epochs' is not a section"),
        ("- a\n- b\n", [], "must hold a mapping"),
        ("a: [1\n", [], "is not valid YAML"),
        ("", ["compress.bn_recalibration_samples=-1"],
         "config error at compress.bn_recalibration_samples: Input should be greater than or equal to 0"),
        ("", ["compress.int8_output_correction=maybe"], "config error at compress.int8_output_correction"),
    ],
)
def test_bad_config_is_one_readable_line(tmp_path: Path, text: str, overrides: list[str], expected: str) -> None:
    p = tmp_path / "e.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(p, overrides)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config("/nonexistent/e.yaml")


def test_overrides_do_not_mutate_input() -> None:
    raw = {"train": {"epochs": 2}}
    out = apply_overrides(raw, ["train.epochs=5"])
    assert raw == {"train": {"epochs": 2}} and out["train"]["epochs"] == 5


def test_json_round_trip_and_yaml_dump() -> None:
    cfg = load_config(None, ["name=rt", "model.name=tiny_cnn"])
    assert config_from_json(cfg.model_dump_json()) == cfg
    assert "name: rt" in dump_yaml(cfg)
    with pytest.raises(ConfigError, match="unknown key"):
        config_from_json('{"bogus": 1}')


def test_schema_lists_sections() -> None:
    schema = json_schema()
    assert set(schema["properties"]) >= {"data", "model", "train", "evaluate", "store"}
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_are_valid(path: Path) -> None:
    assert isinstance(load_config(path), ExperimentConfig)
