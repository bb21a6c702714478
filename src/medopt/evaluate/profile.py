"""Latency and memory profiling of a model or any inference callable.

Why: compression is judged by speed and footprint as much as by accuracy; these helpers report robust statistics
(median, p95) rather than a single noisy timing.
"""

from __future__ import annotations

import logging
import resource
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch

from medopt.errors import MedoptError

log = logging.getLogger(__name__)

_MB = 1024.0 * 1024.0
#: How often the RSS sampler thread polls, in seconds.
_SAMPLE_INTERVAL_S = 0.001


class ProfileInputError(MedoptError, ValueError):
    """Arguments to a profiling helper are invalid (run counts, shapes, batch sizes)."""


def _is_cuda(x: Any) -> bool:
    """True for a CUDA tensor or a module whose parameters live on CUDA."""
    if isinstance(x, torch.Tensor):
        return x.is_cuda
    if isinstance(x, torch.nn.Module):
        return any(p.is_cuda for p in x.parameters())
    return False


def _sync_if(cuda: bool) -> None:
    if cuda:
        torch.cuda.synchronize()


def measure_latency(
    fn: Callable[[np.ndarray | torch.Tensor], Any],
    example: torch.Tensor | np.ndarray,
    *,
    runs: int,
    warmup: int,
) -> dict[str, float | int]:
    """Time ``fn(example)`` over repeated calls after warm-up (CUDA is synchronised around each call).

    Args:
        fn: the inference callable, e.g. a torch module or an onnxruntime session wrapper.
        example: one already-batched input; its first dimension is reported as ``batch``.
        runs: timed calls (>= 1).
        warmup: untimed calls first, for lazy initialisation, caches and autotuning (>= 0).

    Returns:
        ``median_ms``, ``p95_ms``, ``mean_ms``, ``min_ms``, ``throughput_per_s`` (samples/s at the median),
        ``runs`` and ``batch``.
    """
    if runs < 1 or warmup < 0:
        raise ProfileInputError(f"runs must be >= 1 and warmup >= 0, got runs={runs}, warmup={warmup}")
    shape = tuple(example.shape)
    if len(shape) == 0 or shape[0] < 1:
        raise ProfileInputError(f"example must be batched (first dimension >= 1), got shape {shape}")
    for _ in range(warmup):
        fn(example)
    _sync_if(_is_cuda(example))
    return latency_stats(time_calls(fn, example, runs), shape[0])


def time_calls(fn: Callable[[Any], Any], example: Any, runs: int) -> np.ndarray:
    """Milliseconds of each of ``runs`` calls ``fn(example)`` (CUDA synchronised), no warm-up."""
    cuda = _is_cuda(example)
    times = np.empty(runs)
    for i in range(runs):
        start = time.perf_counter()
        fn(example)
        _sync_if(cuda)
        times[i] = (time.perf_counter() - start) * 1000.0
    return times


def latency_stats(times: np.ndarray, batch: int) -> dict[str, float | int]:
    """The summary ``measure_latency`` reports for call times in milliseconds."""
    median = float(np.median(times))
    return {
        "median_ms": median,
        "p95_ms": float(np.percentile(times, 95)),
        "mean_ms": float(times.mean()),
        "min_ms": float(times.min()),
        "throughput_per_s": batch * 1000.0 / median if median > 0 else float("inf"),
        "runs": int(len(times)),
        "batch": batch,
    }


def _model_device(model: torch.nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def latency_by_batch(
    model: torch.nn.Module,
    input_shape: tuple[int, int, int],
    batch_sizes: Iterable[int],
    runs: int,
    warmup: int,
) -> dict[str, dict[str, float | int]]:
    """Eager-mode latency of ``model`` (eval mode, inference_mode) for each batch size.

    The input is a fixed seeded random tensor on the model's device; the model's train/eval mode is restored.

    Returns:
        ``{str(batch_size): measure_latency(...) stats}``.
    """
    if len(input_shape) != 3 or any(int(d) < 1 for d in input_shape):
        raise ProfileInputError(f"input_shape must be (channels, height, width) > 0, got {input_shape}")
    sizes = [int(b) for b in batch_sizes]
    if not sizes or any(b < 1 for b in sizes):
        raise ProfileInputError(f"batch_sizes must be a non-empty list of positive ints, got {sizes}")
    device = _model_device(model)
    generator = torch.Generator().manual_seed(0)
    was_training = model.training
    model.eval()
    out: dict[str, dict[str, float | int]] = {}
    try:
        with torch.inference_mode():
            for b in sizes:
                x = torch.randn((b, *input_shape), generator=generator).to(device)
                out[str(b)] = measure_latency(model, x, runs=runs, warmup=warmup)
                log.debug("latency batch=%d median=%.3f ms", b, out[str(b)]["median_ms"])
    finally:
        model.train(was_training)
    return out


def _maxrss_bytes() -> int:
    """Lifetime peak RSS of this process (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def _cuda_peak_mb(fn: Callable[..., Any], args: tuple[Any, ...]) -> float:
    """Peak CUDA memory allocated by torch during the call, above what was allocated before it."""
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    result = fn(*args)
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated()
    del result
    return max(0.0, (peak - before) / _MB)


def peak_memory_mb(fn: Callable[..., Any], *args: Any) -> float:
    """Peak memory increase, in MiB, while ``fn(*args)`` runs.

    On CPU this is the growth of the process's resident set size (RSS) above its value just before the call:
    a thread samples RSS every ~1 ms (psutil), and the kernel's lifetime peak (``ru_maxrss``) is a floor that
    catches spikes between samples whenever the call set a new process-wide peak. RSS counts every allocator
    (numpy, torch, onnxruntime) but also pages freed yet not returned to the OS, so treat it as an upper-bound
    estimate. The return value of ``fn`` is kept alive until measuring ends. When ``fn`` is a module on CUDA or any
    argument is a CUDA tensor, the result is instead torch's peak CUDA allocation above the pre-call level.
    """
    import psutil

    if _is_cuda(fn) or any(_is_cuda(a) for a in args):
        return _cuda_peak_mb(fn, args)
    proc = psutil.Process()
    baseline = proc.memory_info().rss
    maxrss_before = _maxrss_bytes()
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            done.wait(_SAMPLE_INTERVAL_S)

    sampler = threading.Thread(target=sample, name="peak-memory-sampler", daemon=True)
    sampler.start()
    try:
        result = fn(*args)
        peak[0] = max(peak[0], proc.memory_info().rss)
    finally:
        done.set()
        sampler.join()
    maxrss_after = _maxrss_bytes()
    if maxrss_after > maxrss_before:
        peak[0] = max(peak[0], maxrss_after)
    del result
    return max(0.0, (peak[0] - baseline) / _MB)
