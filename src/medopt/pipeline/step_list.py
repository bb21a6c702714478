"""The pipeline's steps, defined once: name, inputs, outputs, the config switch and the body of each.

Both runners walk ``STEPS`` in order: ``pipelines/medopt_pipeline.py`` wires one KFP component per step from it, and
``medopt.pipeline.inprocess`` calls the bodies in this process. A step switched off by its config section still runs:
it writes ``{"enabled": false}`` to every output (KFP needs every output to exist), so the config stays the single
switch (a ``dsl.If`` would need a second pipeline parameter that could disagree with it).
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from medopt.config import ExperimentConfig, config_from_json
from medopt.errors import MedoptError
from medopt.pipeline import steps
from medopt.pipeline.refs import mark_disabled

log = logging.getLogger(__name__)


class StepListError(MedoptError, ValueError):
    """A step name is unknown, or a step was handed other artifacts than the list declares."""


@dataclass(frozen=True)
class StepInput:
    """A body parameter fed by an earlier step's output, named ``"<step>.<output>"`` in ``source``."""

    name: str
    source: str

    @property
    def step(self) -> str:
        return self.source.partition(".")[0]

    @property
    def output(self) -> str:
        return self.source.partition(".")[2]


@dataclass(frozen=True)
class StepOutput:
    """An output artifact: the body parameter's name and its KFP artifact type (``kfp.dsl`` class name)."""

    name: str
    type: str


@dataclass(frozen=True)
class Step:
    """One pipeline step; ``enabled_by`` is the dotted config field that switches it on (None: always on).

    ``per_run`` steps name what they store after the pipeline run, so on a cluster they get the KFP run's id and are
    never cached; the others (the expensive ones) get only a run id the user set, and KFP caches them on their
    config and input artifacts.
    """

    name: str
    body: Callable[..., Any]
    inputs: tuple[StepInput, ...]
    outputs: tuple[StepOutput, ...]
    enabled_by: str | None = None
    per_run: bool = False

    def enabled(self, cfg: ExperimentConfig) -> bool:
        return self.enabled_by is None or bool(operator.attrgetter(self.enabled_by)(cfg))

    @property
    def artifact_names(self) -> tuple[str, ...]:
        """The body's artifact parameters in order (after ``cfg`` and ``run_id``): inputs, then outputs."""
        return tuple(i.name for i in self.inputs) + tuple(o.name for o in self.outputs)


STEPS: tuple[Step, ...] = (
    Step("data", steps.data_step, inputs=(), outputs=(StepOutput("dataset", "Dataset"),)),
    Step("train", steps.train_step,
         inputs=(StepInput("dataset", "data.dataset"),),
         outputs=(StepOutput("model", "Model"), StepOutput("history", "Artifact"))),
    Step("compress", steps.compress_step,
         inputs=(StepInput("dataset", "data.dataset"), StepInput("model", "train.model")),
         outputs=(StepOutput("summary", "Artifact"), StepOutput("best_model", "Model")),
         enabled_by="compress.enabled"),
    Step("federate", steps.federate_step,
         inputs=(StepInput("dataset", "data.dataset"),),
         outputs=(StepOutput("model", "Model"), StepOutput("history", "Artifact")),
         enabled_by="federate.enabled"),
    # The InferenceService for the compressed model when compress chose one, else for the trained model.
    Step("deploy", steps.deploy_step,
         inputs=(StepInput("model", "train.model"), StepInput("compressed", "compress.best_model")),
         outputs=(StepOutput("inference_service", "Artifact"),), per_run=True),
    Step("evaluate", steps.evaluate_step,
         inputs=(StepInput("dataset", "data.dataset"), StepInput("model", "train.model"),
                 StepInput("history", "train.history")),
         outputs=(StepOutput("metrics", "Metrics"), StepOutput("classification", "ClassificationMetrics"),
                  StepOutput("report", "HTML")),
         per_run=True),
    # Placements (edge, cloud, split) over emulated links, last: it needs the trained and the compressed model.
    Step("bench", steps.bench_step,
         inputs=(StepInput("dataset", "data.dataset"), StepInput("model", "train.model"),
                 StepInput("compressed", "compress.best_model")),
         outputs=(StepOutput("results", "Artifact"), StepOutput("metrics", "Metrics"), StepOutput("report", "HTML")),
         enabled_by="bench.enabled", per_run=True),
)


def step_named(name: str) -> Step:
    """The step called ``name``."""
    for step in STEPS:
        if step.name == name:
            return step
    raise StepListError(f"unknown pipeline step {name!r}; steps: {', '.join(s.name for s in STEPS)}")


def run_step(name: str, config_json: str, run_id: str, **artifacts: Any) -> bool:
    """Run one step as both runners do: validate the config, skip when switched off, else call the body.

    ``artifacts`` are the step's inputs and outputs by name (KFP artifacts, or anything with ``.path`` and
    ``.metadata``). Returns False when the config switched the step off (its outputs then hold ``{"enabled": false}``).
    """
    step = step_named(name)
    if set(artifacts) != set(step.artifact_names):
        raise StepListError(f"step {name!r} takes artifacts {list(step.artifact_names)}, got {sorted(artifacts)}")
    cfg = config_from_json(config_json)
    if not step.enabled(cfg):
        mark_disabled(*(artifacts[o.name] for o in step.outputs))
        log.info("%s is false: skipping the %s step", step.enabled_by, name)
        return False
    step.body(cfg, run_id, **artifacts)
    return True
