"""The evaluate stage: test-set metrics with confidence intervals, latency, memory and an HTML report."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medopt.config import ExperimentConfig, dump_yaml
from medopt.data import ImageDataset, make_loader
from medopt.data.artifact import load_dataset_artifact
from medopt.evaluate.inference import evaluate_epoch
from medopt.evaluate.metrics import compute_metrics, roc_points
from medopt.evaluate.profile import latency_by_batch, peak_memory_mb
from medopt.evaluate.report import write_report
from medopt.evaluate.stats import bootstrap_ci
from medopt.models.model_file import ModelBundle, load_model_file
from medopt.store import ArtifactStore, Manifest


@dataclass(frozen=True)
class EvaluateResult:
    metrics: Manifest
    report: Manifest | None
    values: dict[str, Any]


def predict_split(bundle: ModelBundle, dataset: ImageDataset, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """(y_true, y_prob) of the bundle's model on one split, preprocessed exactly as in training."""
    data = getattr(dataset, split)
    loader = make_loader(data, bundle.preprocess, batch_size=256, shuffle=False, seed=0, task=dataset.task)
    out = evaluate_epoch(bundle.model, loader, None, device=torch.device("cpu"), task=dataset.task)
    return out.y_true, out.y_prob


def profile_model(bundle: ModelBundle, cfg: ExperimentConfig) -> dict[str, Any]:
    """Eager PyTorch latency per batch size and the peak RSS growth of one inference at the largest batch."""
    shape = bundle.geometry.input_shape
    ev = cfg.evaluate
    batch = max(ev.latency_batch_sizes)
    with torch.inference_mode():  # before the latency runs, whose freed buffers the allocator would reuse
        peak = peak_memory_mb(bundle.model, torch.zeros((batch, *shape)))
    latency = latency_by_batch(bundle.model, shape, ev.latency_batch_sizes, ev.latency_runs, ev.latency_warmup)
    params = sum(p.numel() for p in bundle.model.parameters())
    return {"latency": latency, "peak_memory_mb": peak, "peak_memory_batch": batch, "params": params}


def evaluate_bundle(bundle: ModelBundle, dataset: ImageDataset, cfg: ExperimentConfig) -> dict[str, Any]:
    """The full metric set, CIs, ROC points and profile of a model on the dataset's test split."""
    y_true, y_prob = predict_split(bundle, dataset)
    metrics = compute_metrics(y_true, y_prob, dataset.task, dataset.class_names)
    ev = cfg.evaluate
    ci = (
        bootstrap_ci(y_true, y_prob, dataset.task, n_resamples=ev.bootstrap_samples, level=ev.ci_level, seed=cfg.seed)
        if ev.bootstrap_samples
        else {}
    )
    return {
        "metrics": metrics,
        "ci": {k: list(v) for k, v in ci.items()},
        "roc": roc_points(y_true, y_prob, dataset.task, class_names=dataset.class_names),
        "profile": profile_model(bundle, cfg),
        "test_samples": int(len(y_true)),
    }


def run_evaluate(
    cfg: ExperimentConfig,
    store: ArtifactStore,
    *,
    dataset_key: str,
    model_key: str,
    prefix: str,
    history_key: str | None = None,
) -> EvaluateResult:
    """Evaluate a stored model on a stored dataset; store metrics.json and (optionally) report.html."""
    provenance = cfg.model_dump(mode="json")
    parents = [k for k in (dataset_key, model_key, history_key) if k]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        dataset = load_dataset_artifact(store, dataset_key, work)
        bundle = load_model_file(store.get_file(model_key, work / "model.pt"))
        values = evaluate_bundle(bundle, dataset, cfg)
        scalars = {k: v for k, v in values["metrics"].items() if isinstance(v, (int, float))}
        metrics_path = work / "metrics.json"
        metrics_path.write_text(json.dumps(values, indent=1, default=float))
        metrics_manifest = store.put_file(
            f"{prefix}/evaluate/metrics.json", metrics_path, kind="metrics", config=provenance, metrics=scalars,
            parents=parents,
        )
        report_manifest = None
        if cfg.evaluate.report:
            history = json.loads(store.get_bytes(history_key)) if history_key else None
            report_path = write_report(
                work / "report.html",
                title=f"{cfg.name}: {bundle.model_config.name} on {dataset.source}",
                metrics=values["metrics"],
                ci=values["ci"],
                roc=values["roc"],
                confusion=values["metrics"].get("confusion_matrix"),
                class_names=dataset.class_names,
                history=history,
                latency=values["profile"],
                config_yaml=dump_yaml(cfg),
                ci_level=cfg.evaluate.ci_level,
            )
            report_manifest = store.put_file(
                f"{prefix}/evaluate/report.html", report_path, kind="report/html", config=provenance,
                metrics=scalars, parents=parents,
            )
    return EvaluateResult(metrics=metrics_manifest, report=report_manifest, values=values)
