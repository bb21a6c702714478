from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from medopt.train.seeding import DeviceUnavailableError, resolve_device, seed_everything


def _draws(gen: torch.Generator) -> tuple[float, float, list[float], list[float]]:
    return random.random(), float(np.random.rand()), torch.rand(3).tolist(), torch.rand(2, generator=gen).tolist()


def test_same_seed_same_streams() -> None:
    a = _draws(seed_everything(7))
    b = _draws(seed_everything(7))
    c = _draws(seed_everything(8))
    assert a == b and a != c


def test_bad_seed() -> None:
    with pytest.raises(ValueError, match="seed"):
        seed_everything(-1)


def test_resolve_device(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(DeviceUnavailableError, match="train.device is 'cuda'"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="auto, cpu, cuda"):
        resolve_device("tpu")  # type: ignore[arg-type]
