"""The bench stage: stored dataset + trained model (+ the compress stage's choice) in, hybrid results out.

Stores ``<prefix>/bench/results.json`` (kind ``bench/results``: split plans, accuracy per placement, medians with
CIs, paired reductions against cloud-only) and ``<prefix>/bench/samples.json`` (every request's latency, per link,
placement and window), both with the dataset and models as parents, and ``<prefix>/bench/report.html``.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medopt.bench.hybrid import HeldOut, Models, held_out, run_hybrid
from medopt.config import ExperimentConfig
from medopt.store import ArtifactStore, Manifest

logger = logging.getLogger(__name__)

ONNX_KIND = "model/onnx"


@dataclass(frozen=True)
class BenchResult:
    results: Manifest
    samples: Manifest
    report: Manifest
    figures: dict[str, Any]


def _onnx_of(store: ArtifactStore, key: str, workdir: Path, opset: int) -> tuple[Path, Any]:
    """The stored model as an ONNX file (exported when it is a medopt model file) and its torch module or None."""
    from medopt.compress.export import export_onnx
    from medopt.models.model_file import load_model_file

    manifest = store.manifest(key)
    stem = manifest.sha256[:16]  # one name per stored file, whatever its key
    if manifest.kind == ONNX_KIND:
        return store.get_file(key, workdir / f"{stem}.onnx"), None
    bundle = load_model_file(store.get_file(key, workdir / f"{stem}.pt"))
    path = export_onnx(bundle.model, workdir / f"{stem}.export.onnx", input_shape=bundle.geometry.input_shape,
                       opset=opset)
    return path, bundle


def prepare_models(store: ArtifactStore, *, model_key: str, compressed_key: str | None, workdir: Path,
                   opset: int = 17) -> Models:
    """fp32 ONNX of the trained model, the optimized model (the compress stage's choice, else fp32 again)."""
    fp32, bundle = _onnx_of(store, model_key, workdir, opset)
    if compressed_key is not None:
        optimized, _ = _onnx_of(store, compressed_key, workdir, opset)
        label = compressed_key
    else:
        optimized, label = fp32, f"{model_key} (no compressed model was chosen: fp32)"
    root = getattr(store, "root", None)
    if root is None:
        from medopt.bench.hybrid import BenchError

        raise BenchError("the bench stage runs its nodes on a local store (store.kind=local)")
    return Models(fp32=fp32, optimized=optimized, optimized_label=label, described_by=model_key,
                  store_root=str(root), input_shape=tuple(bundle.geometry.input_shape), torch_model=bundle.model)


def test_images(store: ArtifactStore, dataset_key: str, n: int, workdir: Path) -> HeldOut:
    """The first ``n`` images of the dataset artifact's test split, as PNGs."""
    from medopt.data.artifact import load_dataset_artifact

    ds = load_dataset_artifact(store, dataset_key, workdir)
    labels = ds.test.labels if ds.test.labels.ndim == 1 else ds.test.labels.argmax(axis=1)
    return held_out(ds.test.images, labels, n)


def headline(result: dict[str, Any]) -> dict[str, float]:
    """Scalar figures for KFP Metrics: per link, split vs cloud-only reductions and each placement's mean."""
    out: dict[str, float] = {}
    for link, data in result["links"].items():
        for placement, s in data["placements"].items():
            if s["mean_ms"] is not None:
                out[f"{link}.{placement}.mean_ms"] = float(s["mean_ms"]["median"])
        vs = data.get("split_vs_cloud_fp32") or {}
        for key in ("mean_ms", "p99_ms"):
            if vs.get(key):
                out[f"{link}.split_vs_cloud.{key}_reduction"] = float(vs[key]["reduction"])
    return out


def run_bench(cfg: ExperimentConfig, store: ArtifactStore, *, dataset_key: str, model_key: str,
              compressed_key: str | None, prefix: str) -> BenchResult:
    """Measure ``cfg.bench`` and store its results, samples and report (see the module docstring)."""
    from medopt.bench.links.profiles import load_profiles
    from medopt.bench.report import render_report

    profiles = load_profiles(cfg.bench.profiles_file)
    parents = [dataset_key, model_key] + ([compressed_key] if compressed_key else [])
    provenance = cfg.model_dump(mode="json")
    with tempfile.TemporaryDirectory(prefix="medopt-bench-") as tmp:
        work = Path(tmp)
        models = prepare_models(store, model_key=model_key, compressed_key=compressed_key, workdir=work,
                                opset=cfg.compress.onnx_opset)
        data = test_images(store, dataset_key, cfg.bench.accuracy_images, work)
        result = run_hybrid(cfg.bench, profiles, models, data, workdir=work / "run")
    samples = {link: d.pop("samples") for link, d in result["links"].items()}
    figures = headline(result)
    results = store.put_bytes(f"{prefix}/bench/results.json", json.dumps(result, indent=1).encode(),
                              kind="bench/results", config=provenance, parents=parents, metrics=figures)
    raw = store.put_bytes(f"{prefix}/bench/samples.json", json.dumps(samples).encode(), kind="bench/samples",
                          config=provenance, parents=[results.key])
    html = render_report(result, samples)
    report = store.put_bytes(f"{prefix}/bench/report.html", html.encode(), kind="report/html", config=provenance,
                             parents=[results.key, raw.key])
    logger.info("bench: %s", ", ".join(f"{k}={v:.3g}" for k, v in figures.items()))
    return BenchResult(results=results, samples=raw, report=report, figures=figures)
