from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Model, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def bench_component(
    config_yaml: str, model_name: str, epochs: int, data_source: str, seed: int, run_id: str, job_id: str,
    dataset: Input[Dataset], model: Input[Model], compressed: Input[Model],
    results: Output[Artifact], metrics: Output[Metrics], report: Output[HTML],
) -> None:
    """Time the placements (cloud fp32/optimized, edge, split, cloud JPEG) over the emulated links in ``bench``."""
    from medopt.pipeline.kfp_entry import Overrides, run_component

    run_component("bench", config_yaml, run_id, job_id, overrides=Overrides(model_name, epochs, data_source, seed),
                  dataset=dataset, model=model, compressed=compressed, results=results, metrics=metrics,
                  report=report)
