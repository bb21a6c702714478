from kfp import dsl
from kfp.dsl import Artifact, Input, Model, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def deploy_component(
    config_yaml: str, model_name: str, epochs: int, data_source: str, seed: int, run_id: str, job_id: str,
    model: Input[Model], compressed: Input[Model], inference_service: Output[Artifact],
) -> None:
    """The InferenceService for the chosen model (compressed when chosen, else trained): written, and applied when
    ``deploy.apply`` is "apply".

    Cluster settings come from ``deploy`` in the config, like every other stage's section. Stored under the run id
    (the KFP run's unless ``run_id`` is set), so it is never cached.
    """
    from medopt.pipeline.kfp_entry import Overrides, run_component

    run_component("deploy", config_yaml, run_id, job_id, overrides=Overrides(model_name, epochs, data_source, seed),
                  model=model, compressed=compressed, inference_service=inference_service)
