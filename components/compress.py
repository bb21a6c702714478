from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def compress_component(
    config_json: str,
    run_id: str,
    dataset: Input[Dataset],
    model: Input[Model],
    summary: Output[Artifact],
    best_model: Output[Model],
) -> None:
    """Prune / quantize / export the trained model per compress.recipes (no-op when compress.enabled is false)."""
    from medopt.pipeline.step_list import run_step

    run_step("compress", config_json, run_id, dataset=dataset, model=model, summary=summary, best_model=best_model)
