"""Shared test set-up: small thread budget, the shared data folder by path."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
PNEUMONIA_NPZ = SHARED / "data" / "pneumoniamnist.npz"

torch.set_num_threads(1)

# The real S3 server (SeaweedFS) fixtures, shared by the store and pipeline tests.
from s3_server import S3Server, s3_env, s3_server  # noqa: E402,F401


@pytest.fixture
def pneumonia_npz() -> Path:
    if not PNEUMONIA_NPZ.is_file():
        pytest.skip(f"real PneumoniaMNIST not found at {PNEUMONIA_NPZ}")
    return PNEUMONIA_NPZ
