"""The federate stage: dataset artifact in; the federated global model, its per-round history and manifest out."""

from __future__ import annotations

import json
import logging
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from medopt.config import ExperimentConfig
from medopt.data import make_loader
from medopt.data.artifact import load_dataset_artifact
from medopt.data.types import ImageDataset
from medopt.evaluate.inference import evaluate_epoch
from medopt.evaluate.metrics import SCALAR_METRICS, compute_metrics
from medopt.federate.bn_stats import stat_pairs
from medopt.federate.local_training import build_client_model
from medopt.federate.partitions import split_clients
from medopt.federate.rounds import RoundFn
from medopt.federate.simulation import SimulationOutcome, simulate
from medopt.federate.task import ClientBundle
from medopt.federate.arrays import NDArrays, get_weights, nonnegative_mask, set_weights
from medopt.models.geometry import ModelGeometry, build_model
from medopt.models.model_file import save_model_file
from medopt.store import ArtifactStore, Manifest
from medopt.train.losses import evaluation_loss
from medopt.train.seeding import resolve_device, seed_everything

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FederateResult:
    """Manifests of the global model and the round history, plus the final numbers."""

    model: Manifest
    history: Manifest
    rounds: list[dict[str, Any]]
    metrics: dict[str, Any]


@dataclass(frozen=True)
class FederatedModel:
    """What a federation produced in memory: the global model, its geometry, the run's records."""

    model: nn.Module
    geometry: ModelGeometry
    outcome: SimulationOutcome
    client_sizes: list[dict[str, int]]


def global_evaluator(cfg: ExperimentConfig, geometry: ModelGeometry,
                     dataset: ImageDataset) -> Callable[[NDArrays], Any]:
    """``weights -> (loss, metrics)`` on the global held-out test split, with the evaluation stage's full metric set."""
    device = resolve_device(cfg.train.device)
    model = build_client_model(cfg, geometry).to(device)
    loader = make_loader(dataset.test, cfg.data.preprocess, batch_size=max(cfg.train.batch_size, 256), shuffle=False,
                         seed=0, task=geometry.task)
    loss_fn = evaluation_loss(geometry.task, cfg.train).to(device)

    def evaluate(weights: NDArrays) -> tuple[float, dict[str, float]]:
        set_weights(model, weights)
        out = evaluate_epoch(model, loader, loss_fn, device=device, task=geometry.task)
        metrics = compute_metrics(out.y_true, out.y_prob, geometry.task, geometry.class_names)
        return out.loss, {k: float(metrics[k]) for k in SCALAR_METRICS}

    return evaluate


def federate_dataset(cfg: ExperimentConfig, dataset: ImageDataset, *, run_dir: Path, on_round: RoundFn | None = None,
                     observer: Any = None, fault: Any = None) -> FederatedModel:
    """Partition ``dataset`` into hospitals, federate, and return the global model (CPU, eval mode)."""
    seed_everything(cfg.train.seed)
    geometry = ModelGeometry.from_dataset(cfg.data.preprocess, dataset)
    clients = split_clients(dataset, cfg)
    logger.info("federating %d clients: %s", len(clients), [c.sizes() for c in clients])
    initial_model = build_model(cfg.model, geometry)
    outcome = simulate(cfg, ClientBundle(geometry, tuple(clients)), get_weights(initial_model),
                       global_evaluator(cfg, geometry, dataset), run_dir=run_dir, on_round=on_round, observer=observer,
                       fault=fault, nonnegative=nonnegative_mask(initial_model), bn_pairs=stat_pairs(initial_model))
    set_weights(initial_model, outcome.weights)
    return FederatedModel(initial_model.cpu().eval(), geometry, outcome, [c.sizes() for c in clients])


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Manifest metrics: the last round's global test scalars, totals of bytes, time and failures, epsilon."""
    last = rounds[-1] if rounds else {}
    out: dict[str, Any] = {k: v for k, v in last.items()
                           if k.startswith("test_") and isinstance(v, float) and math.isfinite(v)}
    out.update({"rounds": len(rounds), "seconds": float(sum(r["seconds"] for r in rounds)),
                "sent_mb": float(sum(r["sent_mb"] for r in rounds)),
                "received_mb": float(sum(r["received_mb"] for r in rounds)),
                "failures": int(sum(len(r["failures"]) for r in rounds))})
    if "epsilon" in last:
        out.update({"epsilon": float(last["epsilon"]), "dp_delta": float(last["dp_delta"])})
    return out


def run_federate(
    cfg: ExperimentConfig, store: ArtifactStore, *, dataset_key: str, prefix: str, on_round: RoundFn | None = None
) -> FederateResult:
    """Federate on a stored dataset; store ``<prefix>/federate/model.pt`` and ``rounds.json`` with manifests."""
    provenance = cfg.model_dump(mode="json")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        dataset = load_dataset_artifact(store, dataset_key, work)
        run_dir = Path(cfg.output_dir) / Path(prefix).name
        fed = federate_dataset(cfg, dataset, run_dir=run_dir, on_round=on_round)
        summary = summarize(fed.outcome.rounds)
        payload = {"rounds": fed.outcome.rounds, "clients": fed.client_sizes, "summary": summary}
        history = store.put_bytes(f"{prefix}/federate/rounds.json",
                                  json.dumps(payload, indent=1, default=float).encode(), kind="federate/history",
                                  config=provenance, metrics=summary, parents=[dataset_key])
        model_path = work / "model.pt"
        save_model_file(model_path, fed.model, model_config=cfg.model, preprocess=cfg.data.preprocess,
                        geometry=fed.geometry)
        model = store.put_file(f"{prefix}/federate/model.pt", model_path, kind="model/pytorch", config=provenance,
                               metrics=summary, parents=[dataset_key],
                               meta={"model": cfg.model.name, "strategy": cfg.federate.strategy,
                                     "history": history.key})
    return FederateResult(model=model, history=history, rounds=fed.outcome.rounds, metrics=summary)
