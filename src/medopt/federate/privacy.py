"""Differential privacy for federated rounds: clip each client's update, add Gaussian noise to their mean, and
account the (epsilon, delta) budget with a Renyi-DP accountant for the subsampled Gaussian mechanism.

Scheme (DP-FedAvg, McMahan et al. 2018): a client's update u = w_local - w_global is scaled to L2 norm <= C; the
server averages m clipped updates with equal weights and adds N(0, (z C / m)^2) per coordinate, so each round is
a Gaussian mechanism with noise multiplier z on the client level. The accountant treats client sampling with rate
q = fraction_fit as Poisson sampling (Flower samples a fixed number; the usual approximation) and uses the
integer-order bound of Mironov, Talwar & Zhang 2019 ("Renyi DP of the Sampled Gaussian Mechanism", Sec. 3.3).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.special import gammaln, logsumexp

from medopt.federate.errors import FederateError

NDArrays = list[np.ndarray]
DEFAULT_ORDERS: tuple[int, ...] = tuple(range(2, 129)) + (160, 192, 256, 384, 512)


def global_norm(arrays: Sequence[np.ndarray]) -> float:
    """L2 norm of all arrays taken together."""
    return float(math.sqrt(sum(float(np.sum(np.asarray(a, np.float64) ** 2)) for a in arrays)))


def clip_update(new: Sequence[np.ndarray], old: Sequence[np.ndarray], clip_norm: float) -> tuple[NDArrays, float]:
    """``old + u * min(1, C / ||u||)`` with u = new - old; returns the clipped weights and ||u|| before clipping."""
    if clip_norm <= 0:
        raise FederateError(f"dp clip_norm must be > 0, got {clip_norm}")
    if len(new) != len(old):
        raise FederateError(f"clip_update: {len(new)} new arrays but {len(old)} old ones")
    update = [np.asarray(n, np.float64) - np.asarray(o, np.float64) for n, o in zip(new, old)]
    norm = global_norm(update)
    scale = min(1.0, clip_norm / norm) if norm > 0 else 1.0
    return [(np.asarray(o, np.float64) + scale * u).astype(np.float32) for o, u in zip(old, update)], norm


def noise_std(clip_norm: float, noise_multiplier: float, num_clients: int) -> float:
    """Per-coordinate std of the noise on the mean of ``num_clients`` clipped updates: z * C / m."""
    if num_clients < 1:
        raise FederateError(f"noise_std needs >= 1 aggregated client, got {num_clients}")
    return noise_multiplier * clip_norm / num_clients


def add_gaussian_noise(arrays: Sequence[np.ndarray], std: float, rng: np.random.Generator) -> NDArrays:
    """Each array plus i.i.d. N(0, std^2) noise (float32)."""
    if std < 0:
        raise FederateError(f"noise std must be >= 0, got {std}")
    return [(np.asarray(a, np.float64) + rng.normal(0.0, std, size=np.shape(a))).astype(np.float32) for a in arrays]


def _log_binom(n: int, k: np.ndarray) -> np.ndarray:
    return gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)


def rdp_sampled_gaussian(sample_rate: float, noise_multiplier: float, order: int) -> float:
    """RDP of one round at integer ``order``: log(sum_k C(a,k) (1-q)^(a-k) q^k exp((k^2-k)/(2 z^2))) / (a - 1)."""
    if not 0 < sample_rate <= 1:
        raise FederateError(f"sample rate must be in (0, 1], got {sample_rate}")
    if noise_multiplier <= 0 or order < 2:
        raise FederateError(f"need noise_multiplier > 0 and integer order >= 2, got {noise_multiplier}, {order}")
    if sample_rate == 1.0:
        return order / (2.0 * noise_multiplier ** 2)
    k = np.arange(order + 1, dtype=np.float64)
    log_terms = (_log_binom(order, k) + (order - k) * math.log1p(-sample_rate) + k * math.log(sample_rate)
                 + (k * k - k) / (2.0 * noise_multiplier ** 2))
    return float(logsumexp(log_terms)) / (order - 1)


def epsilon(
    sample_rate: float, noise_multiplier: float, rounds: int, delta: float, orders: Sequence[int] = DEFAULT_ORDERS
) -> tuple[float, int]:
    """(epsilon, best order) after ``rounds`` rounds: min over orders of T * rdp(a) + log(1/delta) / (a - 1)."""
    if rounds < 0 or not 0 < delta < 1:
        raise FederateError(f"need rounds >= 0 and 0 < delta < 1, got {rounds}, {delta}")
    if rounds == 0:
        return 0.0, int(orders[0])
    eps = [rounds * rdp_sampled_gaussian(sample_rate, noise_multiplier, a) + math.log(1 / delta) / (a - 1)
           for a in orders]
    best = int(np.argmin(eps))
    return float(eps[best]), int(orders[best])
