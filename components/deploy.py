from kfp import dsl
from kfp.dsl import Artifact, Input, Model, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def deploy_component(
    config_json: str,
    run_id: str,
    model: Input[Model],
    compressed: Input[Model],
    inference_service: Output[Artifact],
) -> None:
    """Write the InferenceService YAML for the chosen model (compressed when chosen, else trained); apply is manual.

    Cluster settings come from ``deploy`` in ``config_json``, like every other stage's section.
    """
    from medopt.pipeline.step_list import run_step

    run_step("deploy", config_json, run_id, model=model, compressed=compressed, inference_service=inference_service)
