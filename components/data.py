from kfp import dsl
from kfp.dsl import Dataset, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def data_component(config_json: str, run_id: str, dataset: Output[Dataset]) -> None:
    """Load, split and store the configured data source."""
    from medopt.pipeline.step_list import run_step

    run_step("data", config_json, run_id, dataset=dataset)
