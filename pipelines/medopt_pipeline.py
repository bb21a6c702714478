"""The medopt pipeline: one KFP component per step of the step list, wired in its order and by its inputs.

The steps (data -> train -> compress -> federate -> deploy, evaluate, bench), their inputs and outputs are defined
once in ``medopt.pipeline.step_list.STEPS``; the in-process runner walks the same list. A new stage is added there
and in ``components/``, not here. ``build_pipeline`` is called, not run at import: the cluster settings (pipeline
root, resources, labels) come from the config the pipeline is compiled with.
"""

from typing import Any

from kfp import dsl
from kfp.dsl.graph_component import GraphComponent

from components import COMPONENTS
from medopt.config import ExperimentConfig
from medopt.pipeline.step_list import STEPS
from pipelines.task_settings import configure_task

PIPELINE_NAME = "medopt"
PARAMETER_DEFAULTS: dict[str, Any] = {"model_name": "", "epochs": 0, "data_source": "", "seed": -1, "run_id": ""}
"""The typed overrides and their "not set" values (``config_yaml``'s default is the compiled config's YAML)."""


def build_pipeline(
    cfg: ExperimentConfig | None = None, *, cluster: bool = True, config_yaml: str = ""
) -> GraphComponent:
    """The pipeline, for a cluster (``cfg.kfp``'s settings on every task) or for kfp.local (``cluster=False``).

    ``config_yaml`` is the default of the pipeline parameter of that name: the config a run uses unless the
    submitter passes another.
    """
    kfp_cfg = (cfg or ExperimentConfig()).kfp
    default_yaml = config_yaml

    def medopt_pipeline(
        config_yaml: str = default_yaml, model_name: str = "", epochs: int = 0, data_source: str = "",
        seed: int = -1, run_id: str = "",
    ) -> None:
        params = {"config_yaml": config_yaml, "model_name": model_name, "epochs": epochs,
                  "data_source": data_source, "seed": seed, "run_id": run_id}
        tasks: dict[str, Any] = {}
        for step in STEPS:
            inputs = {i.name: tasks[i.step].outputs[i.output] for i in step.inputs}
            job = {"job_id": dsl.PIPELINE_JOB_ID_PLACEHOLDER} if step.per_run else {}
            task = COMPONENTS[step.name](**params, **job, **inputs).set_display_name(step.name)
            tasks[step.name] = configure_task(task, step, kfp_cfg) if cluster else task

    return dsl.pipeline(
        name=PIPELINE_NAME, description="Train, evaluate and report a medical-image classifier.",
        pipeline_root=kfp_cfg.pipeline_root if cluster else None,
    )(medopt_pipeline)
