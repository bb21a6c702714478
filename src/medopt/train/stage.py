"""The train stage: dataset artifact in, trained model artifact (+ history) out."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medopt.config import ExperimentConfig
from medopt.data import ImageDataset, augment_batch, make_loader
from medopt.data.artifact import load_dataset_artifact
from medopt.evaluate.metrics import compute_metrics
from medopt.models.geometry import ModelGeometry, build_model
from medopt.models.model_file import save_model_file
from medopt.store import ArtifactStore, Manifest
from medopt.train.history import save_history
from medopt.train.loop import fit
from medopt.train.losses import count_classes
from medopt.train.seeding import resolve_device, seed_everything
from medopt.train.tracker import FitResult

EpochCallback = Callable[[int, dict[str, Any]], None]


@dataclass(frozen=True)
class TrainResult:
    model: Manifest
    history: Manifest
    fit: FitResult


def train_model(
    cfg: ExperimentConfig, dataset: ImageDataset, *, on_epoch_end: EpochCallback | None = None,
    model: torch.nn.Module | None = None,
) -> tuple[torch.nn.Module, FitResult]:
    """Fit the configured model on the dataset's train split, selecting on val.

    ``model`` continues training a model built for this dataset (e.g. progressive resizing: epochs at a small
    image size, then the last ones at the deployed size); by default a fresh one is built from ``cfg.model``.
    """
    generator = seed_everything(cfg.train.seed)
    if model is None:
        model = build_model(cfg.model, ModelGeometry.from_dataset(cfg.data.preprocess, dataset))
    pre, bs = cfg.data.preprocess, cfg.train.batch_size
    train_loader = make_loader(dataset.train, pre, batch_size=bs, shuffle=True, seed=cfg.train.seed, task=dataset.task)
    val_loader = make_loader(dataset.val, pre, batch_size=max(bs, 256), shuffle=False, seed=0, task=dataset.task)
    augment = partial(augment_batch, cfg=cfg.data.augment, generator=generator, crop=pre) if cfg.data.augment.enabled else None
    result = fit(
        model,
        train_loader,
        val_loader,
        cfg.train,
        task=dataset.task,
        metrics_fn=partial(_metrics, class_names=dataset.class_names),
        class_counts=count_classes(dataset.train.labels, dataset.task, dataset.num_classes),
        augment=augment,
        on_epoch_end=on_epoch_end,
        device=resolve_device(cfg.train.device),
    )
    return model, result


def _metrics(y_true: np.ndarray, y_prob: np.ndarray, task: str, class_names: tuple[str, ...]) -> dict[str, Any]:
    return compute_metrics(y_true, y_prob, task, class_names)


def run_train(
    cfg: ExperimentConfig,
    store: ArtifactStore,
    *,
    dataset_key: str,
    prefix: str,
    on_epoch_end: EpochCallback | None = None,
) -> TrainResult:
    """Train on a stored dataset and store ``<prefix>/train/model.pt`` and ``history.json`` with manifests.

    Backend 'kuberay' runs this same function with backend 'ray' in a RayJob and reads its artifacts back.
    """
    if cfg.train.backend == "kuberay":
        from medopt.train.kuberay import train_on_kuberay

        trained = train_on_kuberay(cfg, store, dataset_key=dataset_key, prefix=prefix, on_epoch_end=on_epoch_end)
        return TrainResult(model=trained.model, history=trained.history, fit=trained.fit)
    provenance = cfg.model_dump(mode="json")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        dataset = load_dataset_artifact(store, dataset_key, work)
        if cfg.train.backend == "ray":
            from medopt.train.ray_trainer import train_with_ray

            run_dir = Path(cfg.output_dir) / Path(prefix).name  # the run folder (prefix is runs/<run_id>)
            model, result = train_with_ray(cfg, dataset, run_dir=run_dir, on_epoch_end=on_epoch_end,
                                           run_prefix=prefix)
        else:
            model, result = train_model(cfg, dataset, on_epoch_end=on_epoch_end)
        geometry = ModelGeometry.from_dataset(cfg.data.preprocess, dataset)
        summary = {
            "best_epoch": result.best_epoch,
            "best_score": result.best_score,
            "monitor": cfg.train.monitor,
            "epochs_run": result.epochs_run,
            "stopped_early": result.stopped_early,
            "train_seconds": float(sum(result.history.get("epoch_seconds", []))),
        }
        history_path = work / "history.json"
        save_history(result.history, history_path)
        history = store.put_file(
            f"{prefix}/train/history.json", history_path, kind="history", config=provenance,
            metrics=summary, parents=[dataset_key],
        )
        parents = [dataset_key]
        if cfg.train.backend == "ray":  # the final training state (optimizer, scheduler, history) for resuming
            checkpoint_path = work / "checkpoint.pt"
            torch.save(result.training_state(), checkpoint_path)
            checkpoint = store.put_file(
                f"{prefix}/train/checkpoint.pt", checkpoint_path, kind="checkpoint/training-state",
                config=provenance, metrics=summary, parents=[dataset_key],
            )
            parents.append(checkpoint.key)
        model_path = work / "model.pt"
        save_model_file(model_path, model.cpu(), model_config=cfg.model, preprocess=cfg.data.preprocess,
                        geometry=geometry)
        model_manifest = store.put_file(
            f"{prefix}/train/model.pt", model_path, kind="model/pytorch", config=provenance, metrics=summary,
            parents=parents, meta={"model": cfg.model.name, "history": history.key},
        )
    return TrainResult(model=model_manifest, history=history, fit=result)
