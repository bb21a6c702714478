"""The compress stage: stored dataset + trained model in, compressed artifacts + a comparison table out."""

from __future__ import annotations

import json
import logging
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from medopt.compress.split_inputs import CompressData
from medopt.compress.engine import CompressOutcome, MeasureSettings, compress_model
from medopt.config import ExperimentConfig
from medopt.data.artifact import load_dataset_artifact
from medopt.models.model_file import ModelBundle, load_model_file, save_model_file
from medopt.store import ArtifactStore, Manifest

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompressResult:
    """Manifests of the summary table and of each recipe's artifact, the best recipe (None if none fit)."""

    summary: Manifest
    artifacts: dict[str, Manifest]
    best: str | None
    rows: list[dict[str, Any]]


def _bundle_saver(bundle: ModelBundle):  # noqa: ANN202 (a SaveModel)
    """Save same-architecture PyTorch results (unstructured pruning) as regular, loadable medopt model files."""

    def save(model: nn.Module, path: Path) -> None:
        save_model_file(path, model, model_config=bundle.model_config, preprocess=bundle.preprocess,
                        geometry=bundle.geometry)

    return save


def _scalars(row: dict[str, Any]) -> dict[str, Any]:
    """Manifest metrics: the row's finite numbers and flags (nested metric dicts stay in summary.json)."""
    out: dict[str, Any] = {}
    for k, v in row.items():
        if isinstance(v, bool) or (isinstance(v, (int, float)) and math.isfinite(float(v))):
            out[k] = v
    return out


def serving_meta(bundle: ModelBundle) -> dict[str, Any]:
    """What a server needs besides the ONNX graph (which carries no labels or preprocessing): from the source model."""
    geometry = bundle.geometry.to_dict()
    return {"class_names": geometry["class_names"], "task": geometry["task"], "in_chans": geometry["in_chans"],
            "input_size": geometry["input_size"], "preprocess": bundle.preprocess.model_dump(mode="json"),
            "geometry": geometry}


def _store_artifacts(store: ArtifactStore, outcome: CompressOutcome, prefix: str, provenance: dict[str, Any],
                     parents: list[str], bundle: ModelBundle) -> dict[str, Manifest]:
    artifacts: dict[str, Manifest] = {}
    rows = {r["name"]: r for r in outcome.rows}
    for name, cm in outcome.models.items():
        row = rows[name]
        meta = {"recipe": name, "variant": row.get("variant"), "ratio": cm.ratio, "attempts": cm.attempts,
                "notes": cm.notes, "threads": outcome.threads}
        if cm.kind == "onnx":  # a medopt model file (pytorch) carries these itself
            meta.update(serving_meta(bundle))
        artifacts[name] = store.put_file(
            f"{prefix}/compress/{name}/{cm.path.name}", cm.path, kind=f"model/{cm.kind}", config=provenance,
            metrics=_scalars(row), parents=parents, meta=meta,
        )
    return artifacts


def run_compress(
    cfg: ExperimentConfig, store: ArtifactStore, *, dataset_key: str, model_key: str, prefix: str
) -> CompressResult:
    """Run ``cfg.compress.recipes`` on a stored model; store ``<prefix>/compress/<recipe>/model.*`` and summary.json.

    Latency follows ``cfg.evaluate`` (runs, warm-up, batch sizes) at ``cfg.compress.num_threads`` threads; the
    accuracy budget is checked on the validation split, the reported metrics are on the test split.
    """
    provenance = cfg.model_dump(mode="json")
    parents = [dataset_key, model_key]
    ev = cfg.evaluate
    settings = MeasureSettings(ev.latency_runs, ev.latency_warmup, tuple(ev.latency_batch_sizes))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        dataset = load_dataset_artifact(store, dataset_key, work)
        bundle = load_model_file(store.get_file(model_key, work / "model.pt"))
        data = CompressData(dataset, bundle.preprocess, batch_size=cfg.train.batch_size, seed=cfg.train.seed,
                            geometry=bundle.geometry)
        outcome = compress_model(bundle.model, data, cfg.compress, cfg.train, workdir=work / "compress",
                                 settings=settings, save_model=_bundle_saver(bundle),
                                 model_config=bundle.model_config)
        artifacts = _store_artifacts(store, outcome, prefix, provenance, parents, bundle)
        table = {"best": outcome.best, "threads": outcome.threads, "accuracy_budget": cfg.compress.accuracy_budget,
                 "model": bundle.model_config.name, "rows": outcome.rows,
                 "artifacts": {k: m.key for k, m in artifacts.items()}}
        summary = store.put_bytes(
            f"{prefix}/compress/summary.json", json.dumps(table, indent=1, default=float).encode(),
            kind="compress/summary", config=provenance, parents=parents + [m.key for m in artifacts.values()],
            metrics={"best": outcome.best or "", "recipes": len(cfg.compress.recipes)},
        )
    return CompressResult(summary=summary, artifacts=artifacts, best=outcome.best, rows=outcome.rows)
