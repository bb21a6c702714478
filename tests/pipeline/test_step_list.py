"""The step list is the one definition of the pipeline: the compiled KFP pipeline and the bodies must match it."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from medopt.config import load_config
from medopt.pipeline.inprocess import LocalArtifact
from medopt.pipeline.runner import compile_pipeline
from medopt.pipeline.step_list import STEPS, Step, StepListError, run_step, step_named

PARAMETERS = {"config_yaml", "model_name", "epochs", "data_source", "seed", "run_id"}
"""Every component's parameters; per-run steps (named after the KFP run, never cached) also take ``job_id``."""


def _parameters(step: Step) -> set[str]:
    return PARAMETERS | ({"job_id"} if step.per_run else set())


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = compile_pipeline(tmp_path_factory.mktemp("kfp") / "pipeline.yaml")
    return next(yaml.safe_load_all(path.read_text()))


def _task(name: str) -> str:
    return f"{name}-component"


def test_steps_only_read_outputs_of_earlier_steps() -> None:
    seen: dict[str, str] = {}
    for step in STEPS:
        for i in step.inputs:
            assert i.source in seen, f"{step.name}.{i.name} reads {i.source}, not an output of an earlier step"
        seen.update({f"{step.name}.{o.name}": o.type for o in step.outputs})
    assert len({s.name for s in STEPS}) == len(STEPS)


def test_bodies_take_the_declared_artifacts_in_order() -> None:
    for step in STEPS:
        params = list(inspect.signature(step.body).parameters)
        assert params == ["cfg", "run_id", *step.artifact_names], step.name


def test_kfp_tasks_match_the_step_list(spec: dict[str, Any]) -> None:
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == {_task(s.name) for s in STEPS}
    types = {f"{s.name}.{o.name}": o.type for s in STEPS for o in s.outputs}
    for step in STEPS:
        task = tasks[_task(step.name)]
        assert task["taskInfo"]["name"] == step.name
        assert set(task["inputs"]["parameters"]) == _parameters(step)
        wired = {name: f"{src['taskOutputArtifact']['producerTask'].removesuffix('-component')}."
                       f"{src['taskOutputArtifact']['outputArtifactKey']}"
                 for name, src in task["inputs"].get("artifacts", {}).items()}
        assert wired == {i.name: i.source for i in step.inputs}, step.name
        assert set(task.get("dependentTasks", [])) == {_task(i.step) for i in step.inputs}, step.name
        component = spec["components"][task["componentRef"]["name"]]
        assert set(component["inputDefinitions"]["parameters"]) == _parameters(step)
        inputs = {n: a["artifactType"]["schemaTitle"]
                  for n, a in component["inputDefinitions"].get("artifacts", {}).items()}
        assert inputs == {i.name: f"system.{types[i.source]}" for i in step.inputs}, step.name
        outputs = {n: a["artifactType"]["schemaTitle"] for n, a in component["outputDefinitions"]["artifacts"].items()}
        assert outputs == {o.name: f"system.{o.type}" for o in step.outputs}, step.name
        source = spec["deploymentSpec"]["executors"][component["executorLabel"]]["container"]["command"][-1]
        assert f'run_component("{step.name}", config_yaml, run_id,' in source, step.name


def test_run_step_refuses_other_artifacts_and_unknown_steps(tmp_path: Path) -> None:
    config_json = load_config(None, []).model_dump_json()
    with pytest.raises(StepListError, match="takes artifacts"):
        run_step("data", config_json, "r1", model=LocalArtifact(str(tmp_path / "m")))
    with pytest.raises(StepListError, match="unknown pipeline step"):
        step_named("publish")


@pytest.mark.parametrize("name", [s.name for s in STEPS if s.enabled_by])
def test_a_switched_off_step_fills_its_outputs_with_enabled_false(tmp_path: Path, name: str) -> None:
    step = step_named(name)
    cfg = load_config(None, [f"{step.enabled_by}=false"])
    artifacts = {n: LocalArtifact(str(tmp_path / n)) for n in step.artifact_names}
    assert run_step(name, cfg.model_dump_json(), "r1", **artifacts) is False
    for output in step.outputs:
        assert json.loads(Path(artifacts[output.name].path).read_text()) == {"enabled": False}
        assert artifacts[output.name].metadata == {"enabled": False}
