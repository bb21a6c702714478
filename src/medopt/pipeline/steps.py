"""The step bodies: open the store, call one stage with the keys read from the input refs, write the output refs.

One body per step of ``medopt.pipeline.step_list.STEPS``. The KFP components and the in-process runner both reach
them through ``step_list.run_step`` (which parses the config and handles a step the config switched off), so a pod, a
kfp.local subprocess, an in-process run and a test all run the same code. Stage packages never import this layer.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from medopt.config import ExperimentConfig
from medopt.pipeline import progress
from medopt.pipeline.refs import RefError, StoreRef
from medopt.store import Manifest, open_store

log = logging.getLogger(__name__)


def run_prefix(run_id: str) -> str:
    """Store prefix of one pipeline run's artifacts."""
    return f"runs/{run_id}"


def _annotate(artifact: Any, ref: StoreRef, extra: dict[str, Any] | None = None) -> None:
    """Write the ref into an output artifact and mirror it in the artifact's metadata (shown by the KFP UI)."""
    ref.write(artifact.path)
    artifact.metadata.update({"store_uri": ref.store_uri, "key": ref.key, "sha256": ref.sha256, **(extra or {})})


def _scalars(values: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (values or {}).items() if isinstance(v, (int, float, str, bool))}


def data_step(cfg: ExperimentConfig, run_id: str, dataset: Any) -> None:
    """`data`: load and split the configured source; ``dataset`` is an Output[Dataset]."""
    from medopt.data.stage import run_data

    store = open_store(cfg.store)
    result = run_data(cfg.data, store, prefix=run_prefix(run_id), provenance=cfg.model_dump(mode="json"))
    counts = {f"{name}_samples": split["count"] for name, split in result.summary["splits"].items()}
    _annotate(dataset, StoreRef.from_manifest(store.uri, result.manifest), counts)


def train_step(cfg: ExperimentConfig, run_id: str, dataset: Any, model: Any, history: Any) -> None:
    """`train`: Input[Dataset] in, Output[Model] and Output[Artifact] (history) out; emits per-epoch progress."""
    from medopt.train.stage import run_train

    store = open_store(cfg.store)

    def on_epoch_end(epoch: int, row: dict[str, Any]) -> None:
        progress.emit(progress.epoch_event("train", epoch, cfg.train.epochs, row))

    result = run_train(cfg, store, dataset_key=StoreRef.read(dataset.path).key, prefix=run_prefix(run_id),
                       on_epoch_end=on_epoch_end)
    _annotate(model, StoreRef.from_manifest(store.uri, result.model),
              {"framework": "pytorch", **_scalars(result.model.metrics)})
    _annotate(history, StoreRef.from_manifest(store.uri, result.history))


def compress_step(cfg: ExperimentConfig, run_id: str, dataset: Any, model: Any, summary: Any, best_model: Any) -> None:
    """`compress`: the recipes' summary ref and the best recipe's model ref (``{"best": null}`` when none qualified)."""
    from medopt.compress.stage import run_compress

    store = open_store(cfg.store)
    result = run_compress(cfg, store, dataset_key=StoreRef.read(dataset.path).key,
                          model_key=StoreRef.read(model.path).key, prefix=run_prefix(run_id))
    _annotate(summary, StoreRef.from_manifest(store.uri, result.summary), {"best": result.best})
    chosen = result.artifacts.get(result.best) if result.best else None
    if chosen is None:
        Path(best_model.path).parent.mkdir(parents=True, exist_ok=True)
        Path(best_model.path).write_text(json.dumps({"enabled": True, "best": None}))
        best_model.metadata.update({"enabled": True, "best": None})
        return
    _annotate(best_model, StoreRef.from_manifest(store.uri, chosen),
              {"recipe": result.best, "framework": chosen.kind.split("/")[-1]})


def round_event(record: dict[str, Any], rounds: int) -> dict[str, Any]:
    """A progress event per round: the scalar numbers plus the failure count and the first failure's one line."""
    event = {"stage": "federate", "round": record["round"], "rounds": rounds,
             **{k: v for k, v in record.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}}
    event["failures"] = len(record["failures"])
    if record["failures"]:
        event["failure"] = record["failures"][0]
    return event


def federate_step(cfg: ExperimentConfig, run_id: str, dataset: Any, model: Any, history: Any) -> None:
    """`federate`: Input[Dataset] in; Output[Model] (global model ref) and Output[Artifact] (rounds.json ref) out."""
    from medopt.federate.stage import run_federate

    store = open_store(cfg.store)
    result = run_federate(cfg, store, dataset_key=StoreRef.read(dataset.path).key, prefix=run_prefix(run_id),
                          on_round=lambda rec: progress.emit(round_event(rec, cfg.federate.rounds)))
    numbers = {k: v for k, v in result.metrics.items() if isinstance(v, (int, float))}
    _annotate(model, StoreRef.from_manifest(store.uri, result.model), {**numbers, "framework": "pytorch"})
    _annotate(history, StoreRef.from_manifest(store.uri, result.history), numbers)


def _chosen_ref(model_path: str, compressed_path: str) -> StoreRef:
    """The compressed model when the compress step chose one, else the trained model."""
    try:
        return StoreRef.read(compressed_path)
    except RefError:
        log.info("no compressed model chosen; deploying the trained model")
    return StoreRef.read(model_path)


def deploy_step(cfg: ExperimentConfig, run_id: str, model: Any, compressed: Any, inference_service: Any) -> str:
    """`deploy`: write the InferenceService YAML for the chosen model to the output and the store; return its key.

    Everything cluster-side comes from ``cfg.deploy``, so the config stays the one thing crossing the boundary.
    With ``deploy.apply: apply`` the ServingRuntime and the InferenceService are also server-side-applied and the
    step waits until the InferenceService is Ready, recording its URL in the output's metadata.
    """
    from medopt.serve.deploy import (
        dns_name, render_inference_service, render_serving_runtime, render_transformer, server_args, storage_uri,
        to_yaml,
    )

    ref = _chosen_ref(model.path, compressed.path)
    uri = storage_uri(cfg.store, ref.key, cfg.deploy)
    name = cfg.deploy.name or dns_name(cfg.serve.model_name)
    transformer = render_transformer(cfg.deploy, cfg.serve, key=ref.key, uri=uri) if cfg.deploy.transformer else None
    isvc = render_inference_service(cfg.deploy, name=name, uri=uri, sha256=ref.sha256, args=server_args(ref.key),
                                    transformer=transformer)
    text = to_yaml(isvc)
    Path(inference_service.path).parent.mkdir(parents=True, exist_ok=True)
    Path(inference_service.path).write_text(text)
    store = open_store(cfg.store)
    manifest: Manifest = store.put_bytes(
        f"{run_prefix(run_id)}/deploy/inferenceservice.yaml", text.encode(), kind="deploy/inferenceservice",
        config=cfg.model_dump(mode="json"), parents=(ref.key,), meta={"storage_uri": uri, "name": name})
    inference_service.metadata.update({"store_uri": store.uri, "key": manifest.key, "sha256": manifest.sha256,
                                       "storage_uri": uri, "name": name, "model_key": ref.key})
    log.info("InferenceService %s for %s written to %s", name, ref.key, manifest.key)
    if cfg.deploy.apply == "apply":
        from medopt.serve.apply import apply_to_cluster

        applied = apply_to_cluster([render_serving_runtime(cfg.deploy, cfg.serve), isvc],
                                   timeout_s=cfg.deploy.ready_timeout_s, poll_s=cfg.deploy.poll_s)
        inference_service.metadata.update({"applied": True, "url": applied.url or ""})
        log.info("InferenceService %s/%s is Ready at %s", applied.namespace, applied.name, applied.url)
    return manifest.key


def evaluate_step(
    cfg: ExperimentConfig, run_id: str, dataset: Any, model: Any, history: Any, metrics: Any, classification: Any,
    report: Any,
) -> None:
    """`evaluate`: KFP Metrics (finite scalars) and ClassificationMetrics (confusion matrix, binary ROC) for the UI,
    and the HTML report copied into its output."""
    from medopt.evaluate.kfp_metrics import log_classification, log_scalars
    from medopt.evaluate.stage import run_evaluate

    store = open_store(cfg.store)
    result = run_evaluate(
        cfg, store, dataset_key=StoreRef.read(dataset.path).key, model_key=StoreRef.read(model.path).key,
        history_key=StoreRef.read(history.path).key, prefix=run_prefix(run_id),
    )
    log_scalars(metrics, result.metrics.metrics or {})
    log_classification(classification, result.values)
    if result.report is not None:
        Path(report.path).parent.mkdir(parents=True, exist_ok=True)
        Path(report.path).write_bytes(store.get_bytes(result.report.key))
        report.metadata.update({"key": result.report.key, "sha256": result.report.sha256})
    progress.emit({"stage": "evaluate", "done": True, "metrics_key": result.metrics.key})
    log.info("metrics: %s", json.dumps(result.metrics.metrics))


def bench_step(cfg: ExperimentConfig, run_id: str, dataset: Any, model: Any, compressed: Any, results: Any,
               metrics: Any, report: Any) -> None:
    """`bench`: the placements over the configured links; results ref, KFP Metrics of the headline figures, HTML."""
    from medopt.bench.stage import run_bench

    store = open_store(cfg.store)
    try:
        compressed_key: str | None = StoreRef.read(compressed.path).key
    except RefError:
        compressed_key = None
    result = run_bench(cfg, store, dataset_key=StoreRef.read(dataset.path).key,
                       model_key=StoreRef.read(model.path).key, compressed_key=compressed_key,
                       prefix=run_prefix(run_id))
    _annotate(results, StoreRef.from_manifest(store.uri, result.results), _scalars(result.figures))
    for name, value in result.figures.items():
        metrics.log_metric(name, value)
    Path(report.path).parent.mkdir(parents=True, exist_ok=True)
    Path(report.path).write_bytes(store.get_bytes(result.report.key))
