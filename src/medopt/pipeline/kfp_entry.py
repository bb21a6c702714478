"""What a KFP component runs in its pod: the typed pipeline parameters become one config, then ``run_step``.

The pipeline's parameters are the config as YAML text plus a few typed overrides whose "not set" values (``""``,
``0``, ``-1``) leave the config alone. On a cluster (the compiled tasks set ``MEDOPT_KFP_CLUSTER=1``) a local store
is replaced by ``kfp.store``: steps in separate pods share artifacts only through S3.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from typing import Any

import yaml

from medopt.config import ConfigError, ExperimentConfig, config_from_dict
from medopt.errors import MedoptError
from medopt.pipeline.run_ids import execution_id
from medopt.pipeline.step_list import Step, run_step, step_named

log = logging.getLogger(__name__)

CLUSTER_ENV = "MEDOPT_KFP_CLUSTER"
"""Set to "1" on every task of a pipeline compiled for a cluster (not on kfp.local's)."""

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=+-]{0,127}$")


class ComponentInputError(MedoptError, ValueError):
    """A pipeline parameter handed to a component is unusable (not a YAML mapping, a bad run id, ...)."""


@dataclass(frozen=True)
class Overrides:
    """The typed pipeline parameters that override single config fields; the defaults mean "not set"."""

    model_name: str = ""
    epochs: int = 0
    data_source: str = ""
    seed: int = -1

    def fields(self) -> dict[str, Any]:
        """The set overrides as ``{dotted.path: value}`` (typed values: "yes" stays a string, unlike in ``--set``)."""
        if self.epochs < 0:
            raise ComponentInputError(f"epochs must be 0 (config's value) or positive, got {self.epochs}")
        chosen = {"model.name": self.model_name, "train.epochs": self.epochs, "data.source": self.data_source,
                  "seed": self.seed}
        unset = {"model.name": "", "train.epochs": 0, "data.source": "", "seed": -1}
        return {path: value for path, value in chosen.items() if value != unset[path]}


def parse_config_text(text: str | dict[str, Any] | None) -> dict[str, Any]:
    """The config mapping from ``config_yaml``: YAML (hence JSON) text, or a mapping the `kfp` CLI already decoded."""
    if isinstance(text, dict):  # `kfp run create config_yaml='{...}'` JSON-decodes a flow mapping
        return text
    if text is None or not str(text).strip():
        return {}
    try:
        raw = yaml.safe_load(str(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ComponentInputError(f"config_yaml is not valid YAML{where}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ComponentInputError(f"config_yaml must be a YAML mapping (the experiment config), "
                                  f"got {type(raw).__name__}")
    return raw


def resolve_config(text: str | dict[str, Any] | None, overrides: Overrides, *, in_cluster: bool) -> ExperimentConfig:
    """The experiment config a component runs: the text, the overrides, and on a cluster the shared S3 store."""
    raw = parse_config_text(text)
    for path, value in overrides.fields().items():
        node = raw
        *parents, leaf = path.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {path}: '{part}' is not a section")
            node = child
        node[leaf] = value
    cfg = config_from_dict(raw)
    if in_cluster and cfg.store.kind == "local":
        log.info("store.kind is local; pods share %s (kfp.store) instead", cfg.kfp.store.endpoint)
        cfg = cfg.model_copy(update={"store": cfg.kfp.store})
    return cfg


def effective_run_id(step: Step, cfg: ExperimentConfig, run_id: Any, job_id: str = "") -> str:
    """The id a step's store keys live under: the user's run id, else (per-run steps) the KFP run's, else a fresh one.

    A cached step never sees the KFP run's id (that would change its cache key every run): it names one execution
    with ``execution_id``, and later steps find its artifacts through the refs it wrote, not by a run id.
    """
    given = "" if run_id is None else str(run_id).strip()  # `kfp run create run_id=2025` JSON-decodes to an int
    if given:
        if not _RUN_ID.match(given):
            raise ComponentInputError(f"run_id {given!r}: use letters, digits and ._=+- (at most 128)")
        return given
    if step.per_run and job_id and not job_id.startswith("{{"):
        return job_id
    return execution_id(cfg)


def in_cluster() -> bool:
    """Whether this process is a task of a pipeline compiled for a cluster."""
    return os.environ.get(CLUSTER_ENV) == "1"


def run_component(
    name: str, config_yaml: str | dict[str, Any], run_id: Any = "", job_id: str = "", *,
    overrides: Overrides = Overrides(), **artifacts: Any,
) -> bool:
    """A component's body: resolve the config and the run id, then run the step (False: the config switched it off)."""
    step = step_named(name)
    cfg = resolve_config(config_yaml, overrides, in_cluster=in_cluster())
    rid = effective_run_id(step, cfg, run_id, job_id)
    log.info("step %s: run id %s, store %s", name, rid, cfg.store.kind)
    return run_step(name, cfg.model_dump_json(), rid, **artifacts)
