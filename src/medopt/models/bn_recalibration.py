"""Re-estimate BatchNorm running statistics for weights that changed after the statistics were collected.

Why one helper for two stages: a federated client's final local weights no longer match the exponential-average
statistics of its round (see ``medopt.federate.bn_stats``), and a pruned network's remaining channels see other
inputs than the statistics were measured on (removing channels shifts every later layer's activations). In both
cases an exact pass over training data with the final weights makes the statistics those of the weights.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from medopt.models.transfer import freeze_frozen_batchnorm


def trainable_batchnorms(model: nn.Module) -> list[_BatchNorm]:
    """BatchNorm layers that track running statistics and are not frozen (those training would update).

    Leaves ``model`` in training mode (frozen BatchNorm layers in eval mode), as a training step would.
    """
    model.train()
    freeze_frozen_batchnorm(model)
    return [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats and m.training]


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, loader: Iterable[tuple[Tensor, Any]], device: torch.device,
                          *, include_frozen: bool = False) -> int:
    """Replace BatchNorm running statistics by their plain average over the inputs of ``loader`` ((x, _) pairs).

    Only trainable BatchNorm layers are re-estimated unless ``include_frozen`` (pruning changes a frozen layer's
    inputs too). The weights are untouched; the model is left in eval mode. Returns the number of batches seen
    (0 when there is no BatchNorm to re-estimate, in which case nothing is run).
    """
    layers = trainable_batchnorms(model)
    if include_frozen:
        layers = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
        for m in layers:
            m.train()
    batches = 0
    if layers:
        saved = [m.momentum for m in layers]
        for m in layers:
            m.reset_running_stats()
            m.momentum = None  # cumulative moving average: every batch weighs the same
        try:
            for x, _ in loader:
                model(x.to(device, non_blocking=True))
                batches += 1
        finally:
            for m, momentum in zip(layers, saved):
                m.momentum = momentum
    model.eval()
    return batches
