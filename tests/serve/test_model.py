"""The KServe model in-process: verified loading, readiness only after warm-up, torch and ONNX agree."""

from __future__ import annotations

import asyncio
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from serve_fixtures import CLASSES, MODEL_KEY, ONNX_KEY, Stored, direct_probs
from medopt.config import ServeConfig
from medopt.serve import artifact as artifact_mod
from medopt.models.model_file import load_model_file
from medopt.serve.artifact import ServeError, load_served_model
from medopt.serve.model import MedoptModel
from medopt.store import ArtifactCorrupted, LocalStore

CFG = ServeConfig(model_name="m", threads=1, max_latency_ms=0)


def _predict(model: MedoptModel, x: np.ndarray) -> dict:
    return asyncio.run(model.predict({"instances": x.tolist()}))


def test_onnx_and_torch_runtimes_agree_with_direct_ort(stored: Stored) -> None:
    x = np.random.default_rng(0).standard_normal((3, 1, 16, 16)).astype(np.float32)
    expected = direct_probs(stored.onnx_path, x)
    for key in (ONNX_KEY, MODEL_KEY):
        model = MedoptModel(CFG, stored.store, key)
        assert model.load() and model.ready
        out = _predict(model, x)
        probs = np.array([p["probabilities"] for p in out["predictions"]])
        np.testing.assert_allclose(probs, expected, atol=1e-5)
        assert [p["class_name"] for p in out["predictions"]] == [CLASSES[i] for i in expected.argmax(1)]
        assert out["sha256"] == stored.store.manifest(key).sha256
        model.stop()
        assert not model.ready


def test_hash_mismatch_refuses_to_load(stored: Stored, tmp_path: Path) -> None:
    root = tmp_path / "store"
    shutil.copytree(stored.root, root)
    target = root / ONNX_KEY
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    model = MedoptModel(CFG, LocalStore(root), ONNX_KEY)
    with pytest.raises(ArtifactCorrupted):
        model.load()
    assert not model.ready and model.batcher is None


def test_not_ready_until_warm_up_finished(stored: Stored, monkeypatch: pytest.MonkeyPatch) -> None:
    gate, entered = threading.Event(), threading.Event()
    real = artifact_mod.onnx_runner

    def slow_runner(path: Path, threads: int | None):  # noqa: ANN202
        run = real(path, threads)

        def gated(x: np.ndarray) -> np.ndarray:
            entered.set()
            gate.wait(10)
            return run(x)

        return gated

    monkeypatch.setattr(artifact_mod, "onnx_runner", slow_runner)
    model = MedoptModel(CFG, stored.store, ONNX_KEY)
    loader = threading.Thread(target=model.load)
    loader.start()
    assert entered.wait(10)
    assert not model.ready  # the artifact is loaded, the warm-up inference is still running
    gate.set()
    loader.join(10)
    assert model.ready


def test_unservable_artifacts_raise(stored: Stored, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    store.put_file("orphan/model.onnx", stored.onnx_path, kind="model/onnx")
    store.put_bytes("notes.txt", b"hi", kind="notes")
    with pytest.raises(ServeError, match="names no parent"):
        MedoptModel(CFG, store, "orphan/model.onnx").load()
    with pytest.raises(ServeError, match="not a model"):
        MedoptModel(CFG, store, "notes.txt").load()
    with pytest.raises(ServeError, match="cannot run"):
        MedoptModel(CFG.model_copy(update={"runtime": "torch"}), stored.store, ONNX_KEY).load()


def _meta_store(stored: Stored, tmp_path: Path, meta: dict, parents: tuple[str, ...] = ()) -> LocalStore:
    store = LocalStore(tmp_path / "meta-store")
    if parents:
        store.put_file(MODEL_KEY, stored.root / MODEL_KEY, kind="model/pytorch")
    store.put_file("c/model.onnx", stored.onnx_path, kind="model/onnx", parents=list(parents), meta=meta)
    return store


def test_onnx_meta_from_compress_is_served_without_a_parent(stored: Stored, tmp_path: Path) -> None:
    from medopt.compress.stage import serving_meta

    bundle = load_model_file(stored.store.get_file(MODEL_KEY, tmp_path / "m.pt"))
    store = _meta_store(stored, tmp_path, {"recipe": "fp32-onnx", **serving_meta(bundle)})
    served = load_served_model(store, "c/model.onnx", name="m", runtime="auto", threads=1, max_rows=4,
                               workdir=tmp_path / "w")
    assert (served.info.class_names, served.info.task) == (CLASSES, "multiclass")
    assert (served.spec.in_chans, served.spec.preprocess, served.spec.shape) == (1, stored.preprocess, (1, 16, 16))
    x = np.random.default_rng(1).standard_normal((2, 1, 16, 16)).astype(np.float32)
    expected = direct_probs(stored.onnx_path, x)
    logits = served.runner(x)
    np.testing.assert_allclose(np.exp(logits) / np.exp(logits).sum(1, keepdims=True), expected, atol=1e-5)


def test_onnx_meta_wins_over_the_parent_model(stored: Stored, tmp_path: Path) -> None:
    meta = {"class_names": ["a", "b", "c"], "task": "multiclass", "in_chans": 1, "input_size": 16,
            "preprocess": stored.preprocess.model_copy(update={"normalize": "unit"}).model_dump(mode="json")}
    store = _meta_store(stored, tmp_path, meta, parents=(MODEL_KEY,))
    served = load_served_model(store, "c/model.onnx", name="m", runtime="onnx", threads=1, max_rows=4,
                               workdir=tmp_path / "w")
    assert served.info.class_names == ("a", "b", "c") and served.spec.preprocess.normalize == "unit"
    no_meta = LocalStore(tmp_path / "fallback")
    no_meta.put_file(MODEL_KEY, stored.root / MODEL_KEY, kind="model/pytorch")
    no_meta.put_file("c/model.onnx", stored.onnx_path, kind="model/onnx", parents=[MODEL_KEY], meta={"recipe": "x"})
    fallback = load_served_model(no_meta, "c/model.onnx", name="m", runtime="onnx", threads=1, max_rows=4,
                                 workdir=tmp_path / "w2")
    assert fallback.info.class_names == CLASSES and fallback.spec.preprocess == stored.preprocess


@pytest.mark.parametrize("change, message", [
    ({"task": None, "preprocess": None}, "meta lacks task, preprocess"),
    ({"class_names": "abc"}, "class_names must be a non-empty list"),
    ({"in_chans": 0}, "in_chans an int >= 1"),
    ({"preprocess": {"image_size": 2}}, "unreadable meta.preprocess"),
])
def test_bad_onnx_meta_is_refused(stored: Stored, tmp_path: Path, change: dict, message: str) -> None:
    meta = {"class_names": list(CLASSES), "task": "multiclass", "in_chans": 1, "input_size": 16,
            "preprocess": stored.preprocess.model_dump(mode="json")}
    meta = {k: v for k, v in {**meta, **change}.items() if v is not None}
    store = _meta_store(stored, tmp_path, meta, parents=(MODEL_KEY,))
    with pytest.raises(ServeError, match=message):
        load_served_model(store, "c/model.onnx", name="m", runtime="auto", threads=1, max_rows=4,
                          workdir=tmp_path / "w")
