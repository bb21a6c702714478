from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def compress_component(
    config_yaml: str, model_name: str, epochs: int, data_source: str, seed: int, run_id: str,
    dataset: Input[Dataset], model: Input[Model], summary: Output[Artifact], best_model: Output[Model],
) -> None:
    """Prune / quantize / export the trained model per compress.recipes (no-op when compress.enabled is false)."""
    from medopt.pipeline.kfp_entry import Overrides, run_component

    run_component("compress", config_yaml, run_id, overrides=Overrides(model_name, epochs, data_source, seed),
                  dataset=dataset, model=model, summary=summary, best_model=best_model)
