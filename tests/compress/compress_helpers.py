"""Helpers shared by the compression tests (a uniquely named module, importable beside other test folders)."""

from __future__ import annotations

import torch

from medopt.config import ModelConfig
from medopt.models import create_model

SIZE = 16


def tiny(name: str = "tiny_resnet") -> torch.nn.Module:
    """A seeded tiny registry model for 1-channel SIZE x SIZE inputs, in eval mode."""
    torch.manual_seed(0)
    return create_model(ModelConfig(name=name), in_chans=1, num_classes=2, input_size=SIZE).eval()
