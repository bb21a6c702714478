"""Fixtures for the training tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from train_helpers import sk_metrics


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture
def metrics_fn() -> Callable[[np.ndarray, np.ndarray, str], dict[str, float]]:
    return sk_metrics
