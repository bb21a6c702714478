"""Server-side aggregation: (weighted) averaging and the server optimizers FedAvgM, FedAdam and FedYogi.

Pure numpy, no Flower, so the arithmetic is unit-tested by hand. Server optimizers follow Reddi et al. 2021
("Adaptive Federated Optimization"): the mean client update is a pseudo-gradient for a server-side step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from medopt.config import FederateConfig
from medopt.federate.errors import FederateError

NDArrays = list[np.ndarray]
SERVER_LR_DEFAULTS = {"fedavgm": 1.0, "fedadam": 0.01, "fedyogi": 0.01}


def _check_same_shapes(updates: Sequence[Sequence[np.ndarray]]) -> None:
    shapes = [tuple(a.shape) for a in updates[0]]
    for i, arrays in enumerate(updates[1:], start=1):
        if [tuple(a.shape) for a in arrays] != shapes:
            raise FederateError(f"client result {i} has array shapes that differ from client result 0")


def weighted_average(updates: Sequence[Sequence[np.ndarray]], weights: Sequence[float]) -> NDArrays:
    """sum_k w_k x_k / sum_k w_k per array; equal weights give the plain mean.

    Raises:
        FederateError: no updates, mismatched lengths/shapes, or weights that are negative or sum to 0.
    """
    if not updates:
        raise FederateError("cannot average zero client results")
    if len(updates) != len(weights):
        raise FederateError(f"{len(updates)} results but {len(weights)} weights")
    w = np.asarray(weights, dtype=np.float64)
    if np.any(w < 0) or w.sum() <= 0:
        raise FederateError(f"client weights must be >= 0 and sum to > 0, got {w.tolist()}")
    _check_same_shapes(updates)
    w = w / w.sum()
    return [sum(wk * np.asarray(arrays[j], dtype=np.float64) for wk, arrays in zip(w, updates)).astype(np.float32)
            for j in range(len(updates[0]))]


@dataclass
class ServerOptimizer:
    """Turns the current global weights and the clients' mean into the next global weights.

    kind "fedavg" adopts the mean; "fedavgm" steps with heavy-ball momentum on the pseudo-gradient (w - mean);
    "fedadam" / "fedyogi" use Adam / Yogi second moments with adaptivity ``tau``.
    """

    kind: str
    lr: float = 1.0
    momentum: float = 0.9
    beta2: float = 0.99
    tau: float = 1e-3
    _m: NDArrays | None = field(default=None, repr=False)
    _v: NDArrays | None = field(default=None, repr=False)

    def step(self, current: Sequence[np.ndarray], mean: Sequence[np.ndarray]) -> NDArrays:
        """The next global weights from ``current`` and the aggregated client weights ``mean``."""
        if len(current) != len(mean):
            raise FederateError(f"server step: {len(current)} global arrays but {len(mean)} aggregated")
        delta = [np.asarray(m, np.float64) - np.asarray(c, np.float64) for c, m in zip(current, mean)]
        if self.kind in ("fedavg", "fedavg_equal", "fedprox"):
            return [np.asarray(m, np.float32).copy() for m in mean]
        if self.kind == "fedavgm":
            grad = [-d for d in delta]  # pseudo-gradient: current - mean
            self._m = grad if self._m is None else [self.momentum * m + g for m, g in zip(self._m, grad)]
            return [(np.asarray(c, np.float64) - self.lr * m).astype(np.float32) for c, m in zip(current, self._m)]
        if self.kind in ("fedadam", "fedyogi"):
            return self._adaptive(current, delta)
        raise FederateError(f"unknown server optimizer {self.kind!r}")

    def _adaptive(self, current: Sequence[np.ndarray], delta: list[np.ndarray]) -> NDArrays:
        b1, b2 = self.momentum, self.beta2
        m_prev = self._m or [np.zeros_like(d) for d in delta]
        v_prev = self._v or [np.zeros_like(d) for d in delta]
        self._m = [b1 * m + (1 - b1) * d for m, d in zip(m_prev, delta)]
        if self.kind == "fedadam":
            self._v = [b2 * v + (1 - b2) * d * d for v, d in zip(v_prev, delta)]
        else:
            self._v = [v - (1 - b2) * d * d * np.sign(v - d * d) for v, d in zip(v_prev, delta)]
        return [(np.asarray(c, np.float64) + self.lr * m / (np.sqrt(v) + self.tau)).astype(np.float32)
                for c, m, v in zip(current, self._m, self._v)]


def server_optimizer(cfg: FederateConfig) -> ServerOptimizer:
    """The server optimizer the configured strategy implies (plain adoption of the mean for FedAvg/FedProx)."""
    lr = cfg.server_lr if cfg.server_lr is not None else SERVER_LR_DEFAULTS.get(cfg.strategy, 1.0)
    return ServerOptimizer(cfg.strategy, lr=lr, momentum=cfg.server_momentum, beta2=cfg.server_beta2,
                           tau=cfg.server_tau)


def uses_equal_weights(cfg: FederateConfig) -> bool:
    """Clients weigh 1 each under fedavg_equal and under DP (the noise is calibrated to an unweighted mean)."""
    return cfg.strategy == "fedavg_equal" or cfg.dp.enabled
