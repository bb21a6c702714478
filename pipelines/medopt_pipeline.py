"""The medopt pipeline: data -> train -> (compress) -> deploy manifest, and evaluate. Later stages add theirs here."""

from kfp import dsl

from components import (
    compress_component,
    data_component,
    deploy_component,
    evaluate_component,
    federate_component,
    train_component,
)

PIPELINE_NAME = "medopt"


@dsl.pipeline(name=PIPELINE_NAME, description="Train, evaluate and report a medical-image classifier.")
def medopt_pipeline(config_json: str, run_id: str) -> None:
    data = data_component(config_json=config_json, run_id=run_id).set_display_name("data")
    train = train_component(config_json=config_json, run_id=run_id, dataset=data.outputs["dataset"])
    train.set_display_name("train")
    # Always runs; it records {"enabled": false} and stops when compress.enabled is off in config_json, so the
    # config stays the single switch (a dsl.If would need a second parameter that could disagree with it).
    compress = compress_component(
        config_json=config_json, run_id=run_id, dataset=data.outputs["dataset"], model=train.outputs["model"]
    ).set_display_name("compress")
    # Federated training across simulated hospitals, in one pod; records {"enabled": false} unless federate.enabled.
    federate_component(config_json=config_json, run_id=run_id, dataset=data.outputs["dataset"]).set_display_name(
        "federate"
    )
    # The InferenceService for the compressed model when compress chose one, else for the trained model.
    deploy_component(
        config_json=config_json, run_id=run_id, model=train.outputs["model"], compressed=compress.outputs["best_model"]
    ).set_display_name("deploy")
    evaluate_component(
        config_json=config_json,
        run_id=run_id,
        dataset=data.outputs["dataset"],
        model=train.outputs["model"],
        history=train.outputs["history"],
    ).set_display_name("evaluate")
