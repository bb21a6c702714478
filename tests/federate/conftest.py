"""Tiny federations: tiny_cnn, 16 px synthetic images, 3 clients."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")  # before any flwr import: no usage reports from tests

from federate_helpers import make_config  # noqa: E402
from medopt.config import ExperimentConfig  # noqa: E402
from medopt.data.synthetic import synthetic_dataset  # noqa: E402
from medopt.data.types import ImageDataset  # noqa: E402

@pytest.fixture
def cfg() -> ExperimentConfig:
    return make_config()


@pytest.fixture
def dataset(cfg: ExperimentConfig) -> ImageDataset:
    return synthetic_dataset(cfg.data.synthetic, seed=0, split=cfg.data.split)
