from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def federate_component(
    config_yaml: str, model_name: str, epochs: int, data_source: str, seed: int, run_id: str,
    dataset: Input[Dataset], model: Output[Model], history: Output[Artifact],
) -> None:
    """Federated training across simulated hospitals on Flower + Ray in this pod (no-op unless federate.enabled)."""
    from medopt.pipeline.kfp_entry import Overrides, run_component

    run_component("federate", config_yaml, run_id, overrides=Overrides(model_name, epochs, data_source, seed),
                  dataset=dataset, model=model, history=history)
