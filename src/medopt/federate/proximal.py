"""FedProx's proximal term (Li et al. 2020): local loss + (mu/2) ||w - w_global||^2 keeps clients near the global model.

Why a loss wrapper: medopt's ``train_one_epoch`` takes any ``loss_fn(logits, y)``, so FedProx reuses the house epoch
function unchanged instead of a second training loop.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from medopt.federate.errors import FederateError


def snapshot_trainable(model: nn.Module) -> list[Tensor]:
    """Detached copies of the trainable parameters (the global model a round starts from)."""
    return [p.detach().clone() for p in model.parameters() if p.requires_grad]


def proximal_term(model: nn.Module, anchor: list[Tensor], mu: float) -> Tensor:
    """(mu / 2) * sum ||w - w_anchor||^2 over trainable parameters; its gradient is mu * (w - w_anchor).

    Raises:
        FederateError: ``anchor`` does not list one tensor per trainable parameter.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if len(params) != len(anchor):
        raise FederateError(f"proximal term: {len(params)} trainable parameters but {len(anchor)} anchors")
    if mu < 0:
        raise FederateError(f"proximal term: mu must be >= 0, got {mu}")
    total = torch.zeros((), device=params[0].device if params else None)
    for p, a in zip(params, anchor):
        total = total + torch.sum((p - a.to(p.device)) ** 2)
    return 0.5 * mu * total


class ProximalLoss(nn.Module):
    """``base(logits, y) + proximal_term(model, anchor, mu)``: the FedProx client objective."""

    def __init__(self, base: nn.Module, model: nn.Module, anchor: list[Tensor], mu: float) -> None:
        super().__init__()
        self.base = base
        self._model = [model]  # a list, so the model is not registered (and moved/saved) as a submodule
        self.anchor = anchor
        self.mu = float(mu)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return self.base(logits, target) + proximal_term(self._model[0], self.anchor, self.mu)
