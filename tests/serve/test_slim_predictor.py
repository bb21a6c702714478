"""The slim predictor image: serving/requirements.lock is torch-free and agrees with the root lock, and
``python -m medopt.serve`` answers V2 requests for an ONNX artifact with only those distributions importable.

The server runs in a subprocess whose import system refuses torch, torchvision, timm, ray, flwr and kfp, and every
module whose distribution is not pinned in serving/requirements.lock: what the image would lack, it lacks here.
"""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from packaging.utils import canonicalize_name
from PIL import Image

from serve_fixtures import CLASSES, MODEL_KEY, NAME, REPO, SIZE, Running, Stored, direct_probs, free_port, stop, wait_ready

from medopt.models.geometry import ModelGeometry
from medopt.serve.device import NO_TORCH
from medopt.store import LocalStore

SERVING_LOCK = REPO / "serving" / "requirements.lock"
ROOT_LOCK = REPO / "requirements.lock"
FORBIDDEN = ("torch", "torchvision", "timm", "ray", "flwr", "kfp")
SLIM_ONNX = "exp/compress/fp32/slim.onnx"

# Installed in the child before anything of medopt is imported; argv[1] is the serving lock, the rest the server's.
LAUNCHER = textwrap.dedent("""
    import importlib.abc, importlib.metadata, runpy, sys
    from packaging.utils import canonicalize_name

    lock = sys.argv.pop(1)
    pinned = {canonicalize_name(l.split("==")[0].split("[")[0]) for l in open(lock)
              if l.strip() and not l.startswith("#")}
    owners = importlib.metadata.packages_distributions()
    forbidden = set(%r)

    class SlimImage(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            top = name.partition(".")[0]
            dists = {canonicalize_name(d) for d in owners.get(top, ())}
            if top in forbidden or (dists and not dists & pinned and top != "medopt"):
                raise ImportError(f"{name} is not in the slim predictor image")
            return None

    sys.meta_path.insert(0, SlimImage())
    sys.argv[0] = "medopt.serve"
    runpy.run_module("medopt.serve", run_name="__main__", alter_sys=True)
""") % (FORBIDDEN,)


def _pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            out[canonicalize_name(name.split("[")[0])] = version
    return out


def test_serving_lock_is_torch_free_and_matches_the_root_lock() -> None:
    serving, root = _pins(SERVING_LOCK), _pins(ROOT_LOCK)
    assert {"kserve", "onnxruntime", "numpy", "pydantic", "pyyaml", "pillow", "pydicom"} <= set(serving)
    assert not {"torch", "torchvision", "timm", "ray", "flwr", "kfp", "triton"} & set(serving)
    assert not [n for n in serving if n.startswith("nvidia-")]
    assert {n: v for n, v in serving.items() if root.get(n) != v} == {}


@pytest.fixture(scope="module")
def slim_store(stored: Stored, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ONNX model as the compress stage stores it (serving meta in the manifest), beside the torch model file."""
    root = tmp_path_factory.mktemp("slim-store")
    store = LocalStore(root)
    geometry = ModelGeometry.for_preprocess(stored.preprocess, in_chans=1, class_names=CLASSES, task="multiclass")
    meta = {"class_names": list(CLASSES), "task": "multiclass", "in_chans": 1, "input_size": SIZE,
            "preprocess": stored.preprocess.model_dump(mode="json"), "geometry": geometry.to_dict()}
    store.put_file(SLIM_ONNX, stored.onnx_path, kind="model/onnx", config=stored.config, meta=meta)
    store.put_file(MODEL_KEY, stored.store.get_file(MODEL_KEY, root.parent / "model.pt"), kind="model/pytorch",
                   config=stored.config)
    return root


def _start_slim(root: Path, tmp: Path, artifact: str, *extra: str) -> Running:
    http, grpc = free_port(), free_port()
    (tmp / "launcher.py").write_text(LAUNCHER)
    config = tmp / "serve.yaml"
    config.write_text(yaml.safe_dump({"store": {"root": str(root)},
                                      "serve": {"model_name": NAME, "threads": 1, "max_latency_ms": 5}}))
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(tmp / "launcher.py"), str(SERVING_LOCK), "--artifact", artifact,
                             "--config", str(config), "--port", str(http), "--grpc-port", str(grpc), *extra],
                            env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=open(tmp / "server.log", "wb"))
    return Running(f"http://127.0.0.1:{http}", f"127.0.0.1:{grpc}", proc)


@pytest.mark.integration
def test_slim_predictor_serves_onnx_without_torch(slim_store: Path, stored: Stored, tmp_path: Path) -> None:
    running = _start_slim(slim_store, tmp_path, SLIM_ONNX)
    try:
        try:
            wait_ready(running)
        except RuntimeError:
            pytest.fail((tmp_path / "server.log").read_text()[-2000:])
        x = np.random.default_rng(3).standard_normal((2, 1, SIZE, SIZE)).astype(np.float32)
        body = {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}
        out = httpx.post(f"{running.url}/v2/models/{NAME}/infer", json=body, timeout=30)
        assert out.status_code == 200, out.text
        probs = np.array(out.json()["outputs"][0]["data"]).reshape(2, len(CLASSES))
        np.testing.assert_allclose(probs, direct_probs(stored.onnx_path, x), atol=1e-6)
        # an encoded image goes through the torch-free preprocessing inside the slim image too
        png = io.BytesIO()
        Image.fromarray(np.random.default_rng(4).integers(0, 256, (26, 22), dtype=np.uint8)).save(png, "PNG")
        files = {"inputs": [{"name": "input", "shape": [1], "datatype": "BYTES",
                             "data": [base64.b64encode(png.getvalue()).decode()]}]}
        answer = httpx.post(f"{running.url}/v2/models/{NAME}/infer", json=files, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["outputs"][2]["data"][0] in CLASSES
    finally:
        stop(running)
    log = (tmp_path / "server.log").read_text()
    assert "not in the slim predictor image" not in log


def test_slim_predictor_refuses_a_torch_model_in_one_line(slim_store: Path, tmp_path: Path) -> None:
    running = _start_slim(slim_store, tmp_path, MODEL_KEY)
    assert running.proc.wait(timeout=60) == 1
    log = (tmp_path / "server.log").read_text().strip().splitlines()
    assert len(log) == 1 and log[0].endswith(NO_TORCH)
