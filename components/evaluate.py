from kfp import dsl
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def evaluate_component(
    config_yaml: str, model_name: str, epochs: int, data_source: str, seed: int, run_id: str, job_id: str,
    dataset: Input[Dataset], model: Input[Model], history: Input[Artifact],
    metrics: Output[Metrics], classification: Output[ClassificationMetrics], report: Output[HTML],
) -> None:
    """Test-set metrics with CIs, latency and memory, the HTML report; Metrics and ClassificationMetrics for the UI."""
    from medopt.pipeline.kfp_entry import Overrides, run_component

    run_component("evaluate", config_yaml, run_id, job_id, overrides=Overrides(model_name, epochs, data_source, seed),
                  dataset=dataset, model=model, history=history, metrics=metrics, classification=classification,
                  report=report)
