"""Tiny pipeline configs shared by the runner tests: tiny_cnn on 16 px synthetic images, seconds per step."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from medopt.config import ExperimentConfig, load_config

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")  # before any flwr import, here and in kfp.local's subprocesses

TINY = [
    "model.name=tiny_cnn", "data.synthetic.num_samples=200", "data.synthetic.image_size=16",
    "data.preprocess.image_size=16", "train.epochs=2", "train.batch_size=32", "evaluate.bootstrap_samples=50",
    "evaluate.latency_runs=3", "evaluate.latency_warmup=1", "evaluate.latency_batch_sizes=[1, 4]",
]

PipelineCfg = Callable[..., ExperimentConfig]


@pytest.fixture
def pipeline_cfg(tmp_path: Path) -> PipelineCfg:
    """``pipeline_cfg(runner, *overrides)``: the tiny config with its store and run folders under tmp_path."""

    def make(runner: str, *overrides: str) -> ExperimentConfig:
        return load_config(None, [*TINY, f"runner={runner}", f"output_dir={tmp_path / 'runs'}",
                                  f"store.root={tmp_path / 'store'}", *overrides])

    return make
