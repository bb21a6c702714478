from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train_component(
    config_yaml: str, model_name: str, epochs: int, data_source: str, seed: int, run_id: str,
    dataset: Input[Dataset], model: Output[Model], history: Output[Artifact],
) -> None:
    """Train the configured model on the stored dataset (cached: no KFP run id among its inputs)."""
    from medopt.pipeline.kfp_entry import Overrides, run_component

    run_component("train", config_yaml, run_id, overrides=Overrides(model_name, epochs, data_source, seed),
                  dataset=dataset, model=model, history=history)
