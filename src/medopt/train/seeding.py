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


def derive_seed(base_seed: int, *keys: int) -> int:
    """One 32-bit seed from a base seed and integer keys: the single rule every per-epoch and per-round seed uses.

    Why a hash (``SeedSequence``) and not arithmetic: ``seed + 1000 * client + round`` collides (client 0 round
    1000 = client 1 round 0); hashed keys do not, and trailing zero keys do not change the result.
    """
    return int(np.random.SeedSequence([base_seed, *keys]).generate_state(1)[0])


def epoch_seed(base_seed: int, epoch: int, rank: int = 0) -> int:
    """The seed of one epoch on one rank: a resumed epoch draws what an uninterrupted one would."""
    return derive_seed(base_seed, epoch, rank)


def round_seed(base_seed: int, server_round: int, client_id: int) -> int:
    """The seed of one federated client's local training in one round."""
    return derive_seed(base_seed, client_id, server_round)


def reseed_globals(seed: int) -> None:
    """Reseed python's, numpy's and torch's global generators (shuffling, dropout, augmentation) with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


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
