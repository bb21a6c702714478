"""The bodies of the KFP components: re-validate the config, open the store, call one stage, write refs.

Components in ``components/`` are one-line wrappers over these functions, so the logic is importable, typed and
tested without KFP, and a pod, a kfp.local subprocess and a test all run the same code.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from medopt.config import config_from_json
from medopt.pipeline import progress
from medopt.pipeline.refs import StoreRef
from medopt.store import open_store

log = logging.getLogger(__name__)


def run_prefix(run_id: str) -> str:
    """Store prefix of one pipeline run's artifacts."""
    return f"runs/{run_id}"


def _annotate(artifact: Any, ref: StoreRef, extra: dict[str, Any] | None = None) -> None:
    """Write the ref into a KFP output artifact and mirror it in the artifact's metadata (shown by the KFP UI)."""
    ref.write(artifact.path)
    artifact.metadata.update({"store_uri": ref.store_uri, "key": ref.key, "sha256": ref.sha256, **(extra or {})})


def data_step(config_json: str, run_id: str, dataset: Any) -> None:
    """Component body of `data`: ``dataset`` is a KFP Output[Dataset]."""
    from medopt.data.stage import run_data

    cfg = config_from_json(config_json)
    store = open_store(cfg.store)
    result = run_data(cfg.data, store, prefix=run_prefix(run_id), provenance=cfg.model_dump(mode="json"))
    counts = {f"{name}_samples": split["count"] for name, split in result.summary["splits"].items()}
    _annotate(dataset, StoreRef.from_manifest(store.uri, result.manifest), counts)


def train_step(config_json: str, run_id: str, dataset: Any, model: Any, history: Any) -> None:
    """Component body of `train`: Input[Dataset] in, Output[Model] and Output[Artifact] (history) out."""
    from medopt.train.stage import run_train

    cfg = config_from_json(config_json)
    store = open_store(cfg.store)
    data_ref = StoreRef.read(dataset.path)

    def on_epoch_end(epoch: int, row: dict[str, Any]) -> None:
        progress.emit(progress.epoch_event("train", epoch, cfg.train.epochs, row))

    result = run_train(cfg, store, dataset_key=data_ref.key, prefix=run_prefix(run_id), on_epoch_end=on_epoch_end)
    _annotate(model, StoreRef.from_manifest(store.uri, result.model), {"framework": "pytorch", **_scalars(result.model)})
    _annotate(history, StoreRef.from_manifest(store.uri, result.history))


def evaluate_step(
    config_json: str, run_id: str, dataset: Any, model: Any, history: Any, metrics: Any, report: Any
) -> None:
    """Component body of `evaluate`: writes KFP Metrics (scalars for the UI) and an HTML report artifact."""
    from medopt.evaluate.stage import run_evaluate

    cfg = config_from_json(config_json)
    store = open_store(cfg.store)
    result = run_evaluate(
        cfg, store, dataset_key=StoreRef.read(dataset.path).key, model_key=StoreRef.read(model.path).key,
        history_key=StoreRef.read(history.path).key, prefix=run_prefix(run_id),
    )
    for name, value in (result.metrics.metrics or {}).items():
        if math.isfinite(float(value)):  # KFP metrics are JSON numbers: NaN (e.g. undefined AUC) is skipped
            metrics.log_metric(name, float(value))
    if result.report is not None:
        Path(report.path).parent.mkdir(parents=True, exist_ok=True)
        Path(report.path).write_bytes(store.get_bytes(result.report.key))
        report.metadata.update({"key": result.report.key, "sha256": result.report.sha256})
    progress.emit({"stage": "evaluate", "done": True, "metrics_key": result.metrics.key})
    log.info("metrics: %s", json.dumps(result.metrics.metrics))


def _scalars(manifest: Any) -> dict[str, Any]:
    return {k: v for k, v in (manifest.metrics or {}).items() if isinstance(v, (int, float, str, bool))}
