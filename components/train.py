from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train_component(
    config_json: str, run_id: str, dataset: Input[Dataset], model: Output[Model], history: Output[Artifact]
) -> None:
    """Train the configured model on the stored dataset."""
    from medopt.pipeline.step_list import run_step

    run_step("train", config_json, run_id, dataset=dataset, model=model, history=history)
