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
from medopt.serve.artifact import ServeError
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
