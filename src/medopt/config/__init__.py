"""The one typed experiment config that drives every stage.

Each stage receives only its own section. Every model is frozen and forbids unknown keys, so a typo in a YAML file
fails loudly with the field's dotted path instead of being silently ignored. The sections live in ``data``,
``training`` and ``platform``; this module composes them and loads, overrides, validates and dumps the whole.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError

from medopt.config.base import ConfigError, Section  # noqa: F401 - re-exported
from medopt.config.bench_config import PLACEMENTS, BenchConfig  # noqa: F401 - re-exported
from medopt.config.cluster import KfpConfig, PipelineResources, StepResources, Toleration  # noqa: F401 - re-exported
from medopt.config.data_config import (  # noqa: F401 - re-exported
    AugmentConfig,
    DataConfig,
    DicomConfig,
    PartitionConfig,
    PreprocessConfig,
    SplitConfig,
    SyntheticConfig,
)
from medopt.config.training import (  # noqa: F401 - re-exported
    CompressConfig,
    DPConfig,
    EvaluateConfig,
    FederateConfig,
    FederateStrategy,
    ModelConfig,
    OptimizerName,
    SchedulerConfig,
    TrainConfig,
)
from medopt.config.platform import (  # noqa: F401 - re-exported
    DeployConfig,
    ServeConfig,
    StoreConfig,
)


class ExperimentConfig(Section):
    name: str = Field("experiment", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    seed: int = 0
    output_dir: str = Field("runs", description="Run folders (logs, reports) are created under it.")
    runner: Literal["kfp-local", "inprocess"] = Field(
        "kfp-local", description="'kfp-local' runs the KFP pipeline with kfp.local; 'inprocess' the same steps here."
    )
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    compress: CompressConfig = CompressConfig()
    federate: FederateConfig = FederateConfig()
    store: StoreConfig = StoreConfig()
    serve: ServeConfig = ServeConfig()
    deploy: DeployConfig = DeployConfig()
    bench: BenchConfig = BenchConfig()
    kfp: KfpConfig = KfpConfig()


# ------------------------------------------------------------------------------------------------------ loading
def _format_validation_error(err: ValidationError, prefix: str = "") -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"] if p != "__root__")
    where = f"{prefix}{loc}" if loc else prefix.rstrip(".") or "config"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    more = f" (+{len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    value = first.get("input")
    shown = f" (got {value!r})" if first["type"] != "extra_forbidden" and not isinstance(value, dict) else ""
    return f"config error at {where}: {msg}{shown}{more}"


def _parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like section.key=value")
    key, raw = text.split("=", 1)
    path = [p for p in key.strip().split(".") if p]
    if not path:
        raise ConfigError(f"override '{text}' has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override '{text}': value is not valid YAML ({exc.__class__.__name__})") from None
    return path, value


def apply_overrides(raw: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Return a copy of ``raw`` with ``a.b=c`` overrides applied (values parsed as YAML scalars/lists)."""
    out = json.loads(json.dumps(raw))
    for text in overrides:
        path, value = _parse_override(text)
        node = out
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override '{text}': '{part}' is not a section")
            node = child
        node[path[-1]] = value
    return out


def config_from_dict(raw: dict[str, Any]) -> ExperimentConfig:
    """Validate a plain dict, turning pydantic's report into one readable line."""
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err)) from None


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> ExperimentConfig:
    """Load a YAML experiment file (or the defaults when ``path`` is None) and apply ``--set`` overrides."""
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            loaded = yaml.safe_load(p.read_text())
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"config file {p}{where} is not valid YAML") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {p} must hold a mapping at the top level")
        raw = loaded
    return config_from_dict(apply_overrides(raw, overrides))


def config_from_json(text: str) -> ExperimentConfig:
    """Re-validate a config that crossed a process boundary (KFP component, Ray worker)."""
    try:
        return ExperimentConfig.model_validate_json(text)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err)) from None


def dump_yaml(cfg: BaseModel) -> str:
    """The resolved config as YAML, saved next to every artifact it produced."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


def json_schema() -> dict[str, Any]:
    """JSON schema of ExperimentConfig, for editors and docs."""
    return ExperimentConfig.model_json_schema()
