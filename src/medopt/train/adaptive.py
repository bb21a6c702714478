"""The adaptive momentum-learning-rate rule: each weight shrinks or grows its own step size.

Per parameter element, with g_0 = 0 and beta_0 = 0:

    beta_t  = beta_{t-1} + alpha * sign(g_{t-1})
    eta_t   = eta_0 * exp(-gamma * beta_t)
    theta_t+1 = theta_t - eta_t * g_t

Why: a weight whose gradient keeps the same sign accumulates beta and so its step size moves steadily, without any
global schedule; ``weight_decay`` adds an L2 term to g before the rule sees it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.optim import Optimizer


class AdaptiveMomentumLR(Optimizer):
    """Sign-driven per-element learning rates (see module docstring for the update).

    Args:
        params: Parameters or parameter groups to optimize.
        lr: eta_0, the step size before any adaptation.
        alpha: How much beta moves per step, in the direction of the previous gradient's sign.
        gamma: Sensitivity of the step size to beta: eta_t = eta_0 * exp(-gamma * beta_t).
        weight_decay: L2 coefficient added to the gradient (g = grad + weight_decay * theta).
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-2,
        alpha: float = 0.01,
        gamma: float = 1.0,
        weight_decay: float = 0.0,
    ) -> None:
        for name, value, ok in (
            ("lr", lr, lr > 0),
            ("alpha", alpha, alpha >= 0),
            ("gamma", gamma, gamma >= 0),
            ("weight_decay", weight_decay, weight_decay >= 0),
        ):
            if not ok:
                raise ValueError(f"AdaptiveMomentumLR: invalid {name} {value!r} (lr must be > 0, others >= 0)")
        defaults = {"lr": lr, "alpha": alpha, "gamma": gamma, "weight_decay": weight_decay}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """Apply one update; ``closure`` (re-evaluates the loss with grad enabled) is optional."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("AdaptiveMomentumLR does not support sparse gradients")
                self._update(p, group)
        return loss

    def _update(self, p: torch.Tensor, group: dict[str, Any]) -> None:
        g = p.grad
        if group["weight_decay"] != 0:
            g = g.add(p, alpha=group["weight_decay"])
        state = self.state[p]
        if not state:
            state["step"] = 0
            state["beta"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["prev_grad"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        beta = state["beta"]
        beta.add_(torch.sign(state["prev_grad"]), alpha=group["alpha"])
        eta = torch.exp(beta * -group["gamma"]).mul_(group["lr"])
        p.sub_(eta * g)
        state["prev_grad"].copy_(g)
        state["step"] += 1
