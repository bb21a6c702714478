from kfp import dsl
from kfp.dsl import Dataset, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def data_component(
    config_yaml: str, model_name: str, epochs: int, data_source: str, seed: int, run_id: str,
    dataset: Output[Dataset],
) -> None:
    """Load, split and store the configured data source (cached: no KFP run id among its inputs)."""
    from medopt.pipeline.kfp_entry import Overrides, run_component

    run_component("data", config_yaml, run_id, overrides=Overrides(model_name, epochs, data_source, seed),
                  dataset=dataset)
