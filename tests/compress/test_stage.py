from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from torch import nn

from medopt.compress.split_inputs import CompressData
from medopt.compress.stage import run_compress
from medopt.config import ExperimentConfig, PreprocessConfig
from medopt.data.artifact import save_dataset
from medopt.models.geometry import ModelGeometry
from medopt.models.model_file import load_model_file, save_model_file
from medopt.pipeline.refs import StoreRef
from medopt.pipeline.step_list import run_step
from medopt.store import open_store


@pytest.fixture
def stored(tmp_path, trained: nn.Module, data: CompressData):
    cfg = ExperimentConfig.model_validate({
        "store": {"root": str(tmp_path / "store")}, "model": {"name": "tiny_cnn"},
        "data": {"preprocess": {"image_size": 16}},
        "train": {"batch_size": 32, "device": "cpu"},
        "evaluate": {"latency_runs": 3, "latency_warmup": 1, "latency_batch_sizes": [1, 4]},
        "compress": {"enabled": True, "recipes": ["fp32-onnx", "prune30", "int8-static", "unstructured50"],
                     "num_threads": 1, "calibration_samples": 32, "accuracy_budget": 1.0, "prune_steps": 1},
    })
    store = open_store(cfg.store)
    save_dataset(data.dataset, tmp_path / "ds.npz")
    ds = store.put_file("runs/r1/data/dataset.npz", tmp_path / "ds.npz", kind="dataset")
    save_model_file(tmp_path / "m.pt", trained, model_config=cfg.model, preprocess=data.preprocess,
                    geometry=ModelGeometry.from_dataset(data.preprocess, data.dataset))
    model = store.put_file("runs/r1/train/model.pt", tmp_path / "m.pt", kind="model/pytorch")
    return cfg, store, ds.key, model.key


def test_stage_stores_artifacts_with_manifests(stored, tmp_path, data: CompressData) -> None:
    cfg, store, ds_key, model_key = stored
    result = run_compress(cfg, store, dataset_key=ds_key, model_key=model_key, prefix="runs/r1")
    assert set(result.artifacts) == {"fp32-onnx", "prune30", "int8-static", "unstructured50"}
    assert result.artifacts["prune30"].key == "runs/r1/compress/prune30/model.onnx"
    assert result.artifacts["unstructured50"].key == "runs/r1/compress/unstructured50/model.pt"
    for manifest in result.artifacts.values():
        m = store.verify(manifest.key).metrics
        for key in ("params", "macs", "file_bytes", "latency_b1_ms", "latency_b4_ms", "peak_memory_mb", "bacc",
                    "auc", "val_bacc_loss", "speedup_b1_vs_ort"):
            assert key in m, (manifest.key, key)
        assert set(manifest.parents) == {ds_key, model_key}
        meta = store.manifest(manifest.key).meta
        if manifest.kind == "model/onnx":  # what a server needs, from the source model (the graph has none of it)
            assert meta["class_names"] == list(data.dataset.class_names) and meta["task"] == "binary"
            assert (meta["in_chans"], meta["input_size"]) == (1, 16)
            assert PreprocessConfig.model_validate(meta["preprocess"]) == data.preprocess
        else:
            assert "class_names" not in meta and meta["recipe"] == manifest.key.split("/")[-2]
    table = json.loads(store.get_bytes("runs/r1/compress/summary.json"))
    assert [r["name"] for r in table["rows"]][:2] == ["fp32-eager", "fp32-ort"] and table["best"] == result.best
    bundle = load_model_file(store.get_file(result.artifacts["unstructured50"].key, tmp_path / "u.pt"))
    assert bundle.model_config.name == "tiny_cnn"


def _artifact(tmp_path, name: str, ref: StoreRef | None = None) -> SimpleNamespace:
    art = SimpleNamespace(path=str(tmp_path / name), metadata={})
    if ref is not None:
        ref.write(art.path)
    return art


def test_step_runs_and_noops_when_disabled(stored, tmp_path) -> None:
    cfg, store, ds_key, model_key = stored
    ds = _artifact(tmp_path, "ds", StoreRef(store.uri, ds_key, "", "dataset"))
    model = _artifact(tmp_path, "m", StoreRef(store.uri, model_key, "", "model/pytorch"))
    off = cfg.model_copy(update={"compress": cfg.compress.model_copy(update={"enabled": False})})
    summary, best = _artifact(tmp_path, "s"), _artifact(tmp_path, "b")
    assert run_step("compress", off.model_dump_json(), "r1", dataset=ds, model=model, summary=summary,
                    best_model=best) is False
    assert json.loads(open(summary.path).read()) == {"enabled": False}
    on = cfg.model_copy(update={"compress": cfg.compress.model_copy(update={"recipes": ("int8-static",)})})
    assert run_step("compress", on.model_dump_json(), "r1", dataset=ds, model=model, summary=summary,
                    best_model=best) is True
    assert StoreRef.read(summary.path).key == "runs/r1/compress/summary.json"
    assert best.metadata["recipe"] == "int8-static"
    assert StoreRef.read(best.path).key == "runs/r1/compress/int8-static/model.onnx"
