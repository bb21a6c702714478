"""Interleaved latency and fresh-process memory: the two measurements every compression row rests on."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from torch import nn

from medopt.compress.errors import CompressError
from medopt.compress.export import export_onnx
from medopt.compress.footprint import footprint
from medopt.compress.measure import interleaved_latency


def test_interleaved_latency_times_every_predictor_and_ranks_them() -> None:
    order: list[str] = []

    def sleeper(name: str, ms: float):
        def run(x: np.ndarray) -> np.ndarray:
            order.append(name)
            time.sleep(ms / 1000)
            return x
        return run

    out = interleaved_latency({"fast": sleeper("fast", 0.0), "slow": sleeper("slow", 3.0)}, (1, 2, 2), (1, 4),
                              runs=10, warmup=2, rounds=5)
    assert set(out) == {"fast", "slow"} and set(out["slow"]) == {"1", "4"}
    assert out["slow"]["1"]["runs"] == 10 and out["slow"]["4"]["batch"] == 4
    assert out["slow"]["1"]["median_ms"] > out["fast"]["1"]["median_ms"] + 2.0
    timed = order[2 * 2:2 * 2 + 20]  # after each predictor's warm-up at batch 1: 5 rounds of 2 calls each
    assert timed[:4] == ["fast", "fast", "slow", "slow"] and timed[4:8] == ["slow", "slow", "fast", "fast"]


def _wide() -> nn.Module:
    """About 25 MiB of fp32 weights, built from torch's own classes (the child process must unpickle it)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 8192), nn.ReLU(), nn.Linear(8192, 2)).eval()


def test_footprint_counts_the_weights_in_a_fresh_process(tmp_path) -> None:
    model = _wide()
    torch.save(model, tmp_path / "m.pt")
    export_onnx(model, tmp_path / "m.onnx", input_shape=(3, 16, 16), opset=17)
    weights_mb = sum(p.numel() for p in model.parameters()) * 4 / 2**20
    for kind, path in (("torch-module", tmp_path / "m.pt"), ("onnx", tmp_path / "m.onnx")):
        fp = footprint(kind, path, (3, 16, 16), 4, 1)
        assert fp["model_peak_mb"] >= 0.9 * weights_mb, (kind, fp)
        assert fp["peak_rss_mb"] >= fp["runtime_rss_mb"] + fp["model_peak_mb"] - 1e-6


def test_footprint_errors_are_one_readable_line(tmp_path) -> None:
    with pytest.raises(CompressError, match="kind must be one of"):
        footprint("tflite", tmp_path / "m", (3, 16, 16), 1, 1)  # type: ignore[arg-type]
    with pytest.raises(CompressError, match=r"footprint of .*missing.onnx \(onnx\) failed: .*"):
        footprint("onnx", tmp_path / "missing.onnx", (3, 16, 16), 1, 1)
