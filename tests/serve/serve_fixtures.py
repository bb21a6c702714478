"""Serving helpers and fixtures: a tiny model stored as a medopt model file and as ONNX, and a live server subprocess."""

from __future__ import annotations

import contextlib

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch
import yaml

from medopt.config import ExperimentConfig, ModelConfig, PreprocessConfig
from medopt.models import create_model
from medopt.models.geometry import ModelGeometry
from medopt.models.model_file import save_model_file
from medopt.store import LocalStore

REPO = Path(__file__).resolve().parents[2]
SIZE = 16
CLASSES = ("normal", "benign", "malignant")
MODEL_KEY = "exp/train/model.pt"
ONNX_KEY = "exp/compress/fp32/model.onnx"
NAME = "lesions"


@dataclass(frozen=True)
class Stored:
    root: Path
    store: LocalStore
    onnx_path: Path
    preprocess: PreprocessConfig
    config: dict


@pytest.fixture(scope="session")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Stored:
    """tiny_cnn (1 channel, 3 classes, 16 px input from 20 px images) as model.pt and its ONNX export."""
    from medopt.compress.export import export_onnx

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("serve-store")
    preprocess = PreprocessConfig(image_size=20, crop="center", crop_size=SIZE, normalize="meanstd")
    cfg = ExperimentConfig.model_validate({"data": {"preprocess": preprocess.model_dump()}})
    provenance = cfg.model_dump(mode="json")
    model = create_model(ModelConfig(name="tiny_cnn"), in_chans=1, num_classes=3, input_size=SIZE).eval()
    work = root / "work"
    work.mkdir()
    save_model_file(work / "model.pt", model, model_config=ModelConfig(name="tiny_cnn"), preprocess=preprocess,
                    geometry=ModelGeometry.for_preprocess(preprocess, in_chans=1, class_names=CLASSES,
                                                          task="multiclass"))
    onnx_path = export_onnx(model, work / "model.onnx", input_shape=(1, SIZE, SIZE), opset=17)
    store = LocalStore(root / "store")
    store.put_file(MODEL_KEY, work / "model.pt", kind="model/pytorch", config=provenance)
    store.put_file(ONNX_KEY, onnx_path, kind="model/onnx", config=provenance, parents=[MODEL_KEY])
    return Stored(root / "store", store, onnx_path, preprocess, provenance)


def direct_probs(path: Path, x: np.ndarray) -> np.ndarray:
    """The reference: a plain ORT call plus softmax, no server involved."""
    import onnxruntime as ort

    logits = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    return torch.softmax(torch.from_numpy(logits), dim=1).numpy()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Running:
    url: str
    grpc: str
    proc: subprocess.Popen


def start_server(stored: Stored, tmp: Path, artifact: str, **serve: object) -> Running:
    http, grpc = free_port(), free_port()
    settings = {"model_name": NAME, "threads": 1, "max_body_bytes": 256 * 1024, "max_batch_size": 8,
                "max_latency_ms": 50, **serve}
    config = tmp / "serve.yaml"
    config.write_text(yaml.safe_dump({"store": {"root": str(stored.root)}, "serve": settings}))
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "medopt.serve", "--artifact", artifact, "--config", str(config),
                             "--port", str(http), "--grpc-port", str(grpc)], env=env, cwd=tmp,
                            stdout=subprocess.DEVNULL, stderr=open(tmp / "server.log", "wb"))
    return Running(f"http://127.0.0.1:{http}", f"127.0.0.1:{grpc}", proc)


def start_transformer(stored: Stored, tmp: Path, artifact: str, predictor: Running, protocol: str,
                      kserve_style: bool = False) -> Running:
    """``python -m medopt.serve.transformer`` in front of ``predictor``; ``kserve_style``: the flags as KServe's
    controller appends them (--model_name, --predictor_host, --http_port)."""
    http = free_port()
    host = predictor.url.removeprefix("http://")
    flags = (["--model_name", NAME, "--predictor_host", host, "--http_port", str(http)] if kserve_style else
             ["--model-name", NAME, "--predictor-host", host, "--http-port", str(http)])
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "medopt.serve.transformer", "--artifact", artifact, "--store",
                             str(stored.root), "--protocol", protocol, "--set", "serve.max_body_bytes=262144", *flags],
                            env=env, cwd=tmp, stdout=subprocess.DEVNULL,
                            stderr=open(tmp / f"transformer-{protocol}.log", "wb"))
    return Running(f"http://127.0.0.1:{http}", "", proc)


def stop(*servers: Running) -> None:
    """SIGTERM all first, then wait: their graceful shutdowns overlap."""
    live = [r for r in servers if r.proc.poll() is None]
    for running in live:
        running.proc.send_signal(signal.SIGTERM)
    for running in live:
        running.proc.wait(timeout=30)


def wait_ready(running: Running, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running.proc.poll() is not None:
            raise RuntimeError(f"server exited with {running.proc.returncode}")
        try:
            if httpx.get(f"{running.url}/v2/models/{NAME}/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError("server not ready in time")


@contextlib.contextmanager
def running_server(stored: Stored, folder: Path, key: str = ONNX_KEY, **kwargs: Any) -> Iterator[Running]:
    """A server on ``key`` until the block ends (SIGTERM then), once it answers ready."""
    running = start_server(stored, folder, key, **kwargs)
    try:
        wait_ready(running)
        yield running
    finally:
        if running.proc.poll() is None:
            running.proc.send_signal(signal.SIGTERM)
            running.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def server(stored: Stored, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with running_server(stored, tmp_path_factory.mktemp("server")) as running:
        yield running
