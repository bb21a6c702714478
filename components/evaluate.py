from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Model, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def evaluate_component(
    config_json: str,
    run_id: str,
    dataset: Input[Dataset],
    model: Input[Model],
    history: Input[Artifact],
    metrics: Output[Metrics],
    report: Output[HTML],
) -> None:
    """Test-set metrics with CIs, latency and memory, and the HTML report."""
    from medopt.pipeline.step_list import run_step

    run_step("evaluate", config_json, run_id, dataset=dataset, model=model, history=history, metrics=metrics,
             report=report)
