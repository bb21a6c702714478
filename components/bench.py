from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Model, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def bench_component(
    config_json: str,
    run_id: str,
    dataset: Input[Dataset],
    model: Input[Model],
    compressed: Input[Model],
    results: Output[Artifact],
    metrics: Output[Metrics],
    report: Output[HTML],
) -> None:
    """Time the placements (cloud fp32/optimized, edge, split, cloud JPEG) over the emulated links in ``bench``."""
    from medopt.pipeline.step_list import run_step

    run_step("bench", config_json, run_id, dataset=dataset, model=model, compressed=compressed, results=results,
             metrics=metrics, report=report)
