"""The medopt pipeline: one KFP component per step of the step list, wired in its order and by its inputs.

The steps (data -> train -> compress -> federate -> deploy, and evaluate), their inputs and outputs are defined once
in ``medopt.pipeline.step_list.STEPS``; the in-process runner walks the same list. A new stage is added there and in
``components/``, not here.
"""

from typing import Any

from kfp import dsl

from components import COMPONENTS
from medopt.pipeline.step_list import STEPS

PIPELINE_NAME = "medopt"


@dsl.pipeline(name=PIPELINE_NAME, description="Train, evaluate and report a medical-image classifier.")
def medopt_pipeline(config_json: str, run_id: str) -> None:
    tasks: dict[str, Any] = {}
    for step in STEPS:
        inputs = {i.name: tasks[i.step].outputs[i.output] for i in step.inputs}
        task = COMPONENTS[step.name](config_json=config_json, run_id=run_id, **inputs)
        tasks[step.name] = task.set_display_name(step.name)
