"""Seeds and device choice, so two runs with the same seed train the same model."""

from __future__ import annotations

import logging
import random
from typing import Literal

import numpy as np
import torch

from medopt.errors import MedoptError

logger = logging.getLogger(__name__)

DeviceName = Literal["auto", "cpu", "cuda"]


class DeviceUnavailableError(MedoptError, ValueError):
    """The configured device (train.device) cannot be used on this machine."""


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch (CPU and CUDA) and pick deterministic cuDNN kernels.

    Why: model init, shuffling, dropout and augmentation all draw from these generators; seeding them all is what
    makes a run repeatable. Only the cheap determinism switches are flipped (cuDNN); strict
    ``torch.use_deterministic_algorithms`` is left to the caller because it can fail on some CUDA ops.

    Returns:
        A fresh CPU ``torch.Generator`` seeded with ``seed``, for callers that want their own stream
        (e.g. batch augmentation) independent of the global one.
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"seed must be an int, got {seed!r}")
    if not 0 <= seed < 2**63:
        raise ValueError(f"seed must be in [0, 2**63), got {seed}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def resolve_device(name: DeviceName) -> torch.device:
    """Turn train.device into a torch.device; 'auto' prefers CUDA when present.

    Raises:
        DeviceUnavailableError: 'cuda' was asked for but no CUDA device is visible.
        ValueError: the name is not one of auto/cpu/cuda.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailableError("train.device is 'cuda' but no CUDA device is available (use 'auto' or 'cpu')")
        return torch.device("cuda")
    raise ValueError(f"train.device must be one of auto, cpu, cuda; got {name!r}")
