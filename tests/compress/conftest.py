"""Fixtures for the compression tests: a tiny synthetic dataset and a briefly trained tiny model."""

from __future__ import annotations

import copy

import pytest
import torch

from medopt.compress.split_inputs import CompressData
from medopt.config import CompressConfig, ModelConfig, PreprocessConfig, SyntheticConfig, TrainConfig
from medopt.data.synthetic import synthetic_dataset
from medopt.models import create_model
from compress_helpers import SIZE



@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def data() -> CompressData:
    ds = synthetic_dataset(SyntheticConfig(num_samples=160, image_size=SIZE, noise=0.05), seed=0)
    return CompressData(ds, PreprocessConfig(image_size=SIZE), batch_size=32, seed=0)


@pytest.fixture(scope="session")
def train_cfg() -> TrainConfig:
    return TrainConfig(epochs=3, batch_size=32, lr=3e-3, device="cpu", scheduler={"kind": "none"})


@pytest.fixture
def ccfg() -> CompressConfig:
    return CompressConfig(prune_steps=1, finetune_epochs=1, calibration_samples=32, num_threads=1,
                          pt2e_compile=False, accuracy_budget=1.0)


@pytest.fixture(scope="session")
def _trained(data: CompressData, train_cfg: TrainConfig) -> torch.nn.Module:
    from medopt.compress.finetune import finetune

    torch.manual_seed(0)
    model = create_model(ModelConfig(name="tiny_cnn"), in_chans=1, num_classes=2, input_size=SIZE)
    finetune(model, data, train_cfg, CompressConfig(finetune_lr=3e-3), epochs=3, keep_if_worse=True)
    return model.eval()


@pytest.fixture
def trained(_trained: torch.nn.Module) -> torch.nn.Module:
    """A fresh copy per test, so in-place pruning never leaks between tests."""
    return copy.deepcopy(_trained)

