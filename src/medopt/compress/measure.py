"""Measuring any candidate the same way: interleaved latency, file size, test metrics, paired tests.

Why one ``Predictor`` type (numpy float32 batch -> numpy logits): an eager module, a compiled PT2E graph and an ORT
session are then timed by the same code, with the same input and the same thread count.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medopt.bench.harness import round_robin
from medopt.compress.split_inputs import CompressData
from medopt.compress.export import INPUT_NAME, OUTPUT_NAME, ort_session
from medopt.evaluate.metrics import compute_metrics, predict
from medopt.evaluate.profile import latency_stats, measure_latency, time_calls
from medopt.evaluate.stats import delong_test, mcnemar_test

logger = logging.getLogger(__name__)

Predictor = Callable[[np.ndarray], np.ndarray]


def resolve_threads(num_threads: int | None) -> int:
    """The thread count used for every candidate: the configured one, else all cores."""
    return int(num_threads) if num_threads is not None else max(1, os.cpu_count() or 1)


def torch_predictor(module: nn.Module | Callable[[torch.Tensor], torch.Tensor]) -> Predictor:
    """Wrap a module (eval mode) or a compiled callable as a numpy predictor, run under ``inference_mode``."""
    if isinstance(module, nn.Module):
        module.eval()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(x)).float().numpy()

    return run


def onnx_predictor(path: str | Path, threads: int) -> Predictor:
    """An ONNX Runtime session with ``intra_op_num_threads=threads`` as a numpy predictor."""
    session = ort_session(path, threads)

    def run(x: np.ndarray) -> np.ndarray:
        return session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]

    return run


def probabilities(logits: np.ndarray, task: str) -> np.ndarray:
    """Softmax (binary/multiclass) or sigmoid (multilabel) of logits, as the trainer computes them."""
    t = torch.from_numpy(np.asarray(logits, dtype=np.float32))
    return (torch.sigmoid(t) if task == "multilabel" else torch.softmax(t, dim=1)).numpy()


def predict_split(predictor: Predictor, data: CompressData, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(y_true, y_prob) of ``predictor`` on one split, preprocessed as in training."""
    logits = [predictor(x.numpy()) for x in data.batches(split)]
    return data.labels(split), probabilities(np.concatenate(logits), data.task)


def split_bacc(predictor: Predictor, data: CompressData, split: str = "val") -> float:
    """Balanced accuracy on one split (the accuracy-budget metric, computed on VALIDATION)."""
    y_true, y_prob = predict_split(predictor, data, split)
    return float(compute_metrics(y_true, y_prob, data.task, data.dataset.class_names)["bacc"])


def interleaved_latency(
    predictors: dict[str, Predictor], input_shape: tuple[int, int, int], batch_sizes: tuple[int, ...], runs: int,
    warmup: int, rounds: int = 5, settle_s: float = 0.05,
) -> dict[str, dict[str, dict[str, float | int]]]:
    """Latency of every predictor, timed in ``rounds`` interleaved passes (``runs`` calls each in all).

    Why: on a shared, noisy machine a slow minute lands on whichever candidate happens to run then; timing all
    candidates round-robin spreads it over every one of them, so the ratios between candidates stay honest.
    Each chunk starts ``settle_s`` after the previous one: ONNX Runtime's (and OpenMP's) worker threads spin for a
    while after a call, and without the pause they steal the cores from the next candidate (measured here: one
    MobileNetV2 file timed 4.7 and 5.7 ms in two sessions back to back, 1.70 and 1.69 ms with the pause).
    Returns ``{name: {str(batch): measure_latency-style stats over all rounds}}``.
    """
    rng = np.random.default_rng(0)
    rounds = max(1, min(rounds, runs))
    per_round = [runs // rounds + (1 if r < runs % rounds else 0) for r in range(rounds)]
    out: dict[str, dict[str, dict[str, float | int]]] = {name: {} for name in predictors}
    names = list(predictors)
    for b in batch_sizes:
        x = rng.standard_normal((b, *input_shape), dtype=np.float32)
        for name in names:
            measure_latency(predictors[name], x, runs=1, warmup=max(0, warmup - 1))
        times: dict[str, list[np.ndarray]] = {name: [] for name in names}
        for r, name in round_robin(names, len(per_round)):
            time.sleep(settle_s)
            times[name].append(time_calls(predictors[name], x, per_round[r]))
        for name in names:
            out[name][str(b)] = latency_stats(np.concatenate(times[name]), b)
    return out


def paired_tests(
    data: CompressData, reference: tuple[np.ndarray, np.ndarray], y_prob: np.ndarray
) -> dict[str, Any]:
    """McNemar (accuracy) and, for binary tasks, DeLong (AUC) of a candidate vs the fp32 reference on TEST."""
    y_true, ref_prob = reference
    out: dict[str, Any] = {"mcnemar": mcnemar_test(y_true, predict(ref_prob, data.task), predict(y_prob, data.task))}
    if data.task == "binary" and len(np.unique(y_true)) == 2:
        out["delong"] = delong_test(y_true, ref_prob[:, 1], y_prob[:, 1])
    return out


def score_candidate(
    predictor: Predictor,
    data: CompressData,
    *,
    reference: tuple[np.ndarray, np.ndarray] | None = None,
    path: str | Path | None = None,
) -> dict[str, Any]:
    """TEST metrics, paired tests against ``reference`` (the fp32 model's (y_true, y_prob) on TEST), file size.

    ``_test_prob`` holds the candidate's TEST probabilities (the fp32 baseline's become the reference).
    """
    y_true, y_prob = predict_split(predictor, data, "test")
    metrics = compute_metrics(y_true, y_prob, data.task, data.dataset.class_names)
    out: dict[str, Any] = {"metrics": metrics, "file_bytes": Path(path).stat().st_size if path is not None else None,
                           "_test_prob": y_prob}
    if reference is not None:
        out["paired"] = paired_tests(data, reference, y_prob)
    return out
