"""Latency statistics and peak-memory measurement: structure and sanity, never absolute times."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medopt.evaluate.profile import ProfileInputError, latency_by_batch, measure_latency, peak_memory_mb

KEYS = {"median_ms", "p95_ms", "mean_ms", "min_ms", "throughput_per_s", "runs", "batch"}


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Dropout(0.5), torch.nn.Linear(8, 2),
    )


def test_measure_latency_structure_and_call_count() -> None:
    calls = []
    stats = measure_latency(lambda x: calls.append(x.shape), np.zeros((4, 3)), runs=7, warmup=2)
    assert set(stats) == KEYS
    assert len(calls) == 9 and calls[0] == (4, 3)
    assert (stats["runs"], stats["batch"]) == (7, 4)
    assert stats["p95_ms"] >= stats["median_ms"] >= stats["min_ms"] > 0
    assert stats["mean_ms"] >= stats["min_ms"]
    assert stats["throughput_per_s"] == pytest.approx(4 * 1000 / stats["median_ms"])


@pytest.mark.parametrize(("runs", "warmup", "example"), [(0, 1, np.zeros((1, 2))), (3, -1, np.zeros((1, 2))),
                                                         (3, 0, np.float32(1.0)), (3, 0, np.zeros((0, 2)))])
def test_measure_latency_rejects_bad_arguments(runs: int, warmup: int, example) -> None:
    with pytest.raises(ProfileInputError):
        measure_latency(lambda x: x, example, runs=runs, warmup=warmup)


def test_latency_by_batch_per_batch_size_and_restores_mode() -> None:
    model = _tiny_model().train()
    out = latency_by_batch(model, (1, 16, 16), [1, 64], runs=5, warmup=1)
    assert list(out) == ["1", "64"]
    assert all(set(s) == KEYS for s in out.values())
    assert out["64"]["batch"] == 64
    assert out["64"]["median_ms"] >= out["1"]["min_ms"] > 0
    assert model.training


def test_latency_by_batch_runs_without_autograd() -> None:
    seen = []

    class Probe(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append((torch.is_inference_mode_enabled(), self.training, tuple(x.shape)))
            return x

    latency_by_batch(Probe(), (3, 8, 8), [2], runs=1, warmup=0)
    assert seen == [(True, False, (2, 3, 8, 8))]


@pytest.mark.parametrize(("shape", "sizes"), [((16, 16), [1]), ((1, 16, 16), []), ((1, 16, 16), [0])])
def test_latency_by_batch_rejects_bad_arguments(shape: tuple, sizes: list) -> None:
    with pytest.raises(ProfileInputError):
        latency_by_batch(_tiny_model(), shape, sizes, runs=1, warmup=0)


def _allocate_numpy_200mb() -> float:
    block = np.ones(200 * 2**20 // 8)
    return float(block[-1])


def _allocate_torch_200mb() -> None:
    block = torch.ones(200 * 2**20 // 4)
    del block


@pytest.mark.parametrize("fn", [_allocate_numpy_200mb, _allocate_torch_200mb])
def test_peak_memory_sees_a_200mb_allocation(fn) -> None:
    assert peak_memory_mb(fn) >= 150


def test_peak_memory_of_a_noop_is_small_and_args_are_passed() -> None:
    got = []
    assert peak_memory_mb(lambda a, b: got.append(a + b), 1, 2) < 20
    assert got == [3]
