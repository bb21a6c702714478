from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def federate_component(
    config_json: str,
    run_id: str,
    dataset: Input[Dataset],
    model: Output[Model],
    history: Output[Artifact],
) -> None:
    """Federated training across simulated hospitals on Flower + Ray in this pod (no-op unless federate.enabled)."""
    from medopt.pipeline.step_list import run_step

    run_step("federate", config_json, run_id, dataset=dataset, model=model, history=history)
