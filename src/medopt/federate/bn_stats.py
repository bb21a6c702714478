"""BatchNorm statistics in federation: re-estimated for a client's final local weights, pooled at the server.

Why: during local training the running mean/var are an exponential average (momentum 0.1) over the batches of
one round, trailing weights that move fast (the client optimizer starts afresh every round). The client then
ships weights and statistics that do not belong together, the server averages them, and the global model in
eval mode sees activations its statistics do not describe: on PneumoniaMNIST it ranked well (AUC 0.93) but
predicted almost one class (balanced accuracy 0.55). An exact pass over the local training data with the final
weights (``medopt.models.bn_recalibration.recalibrate_batchnorm``) makes every client's statistics those of the
weights it sends.

Averaging weights changes activation statistics again (the mean of diverged models has other feature
variances), so the clients also measure the *global* weights on their data in the evaluate phase and the server
pools those statistics (:func:`pool_stats`) into the global model before it is scored or sent on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch import nn

from medopt.federate.errors import FederateError
from medopt.models.bn_recalibration import trainable_batchnorms


def stat_pairs(model: nn.Module) -> list[tuple[int, int]]:
    """Indices of (running_mean, running_var) of each trainable BatchNorm in the shared weight list."""
    from medopt.federate.arrays import shared_keys

    index = {k: i for i, k in enumerate(shared_keys(model))}
    names = {id(m): n for n, m in model.named_modules()}
    prefix = [f"{names[id(m)]}." if names[id(m)] else "" for m in trainable_batchnorms(model)]
    model.eval()
    return [(index[f"{p}running_mean"], index[f"{p}running_var"]) for p in prefix]


def pack_stats(weights: Sequence[np.ndarray], pairs: Sequence[tuple[int, int]]) -> bytes:
    """The running means and variances of ``pairs`` as one float32 byte string (a Flower metric may be bytes)."""
    parts = [np.asarray(weights[i], np.float32).ravel() for pair in pairs for i in pair]
    return np.concatenate(parts).tobytes() if parts else b""


def unpack_stats(blob: bytes, template: Sequence[np.ndarray], pairs: Sequence[tuple[int, int]]) -> list[np.ndarray]:
    """Inverse of :func:`pack_stats`: [mean, var, mean, var, ...] shaped like ``template``'s arrays.

    Raises:
        FederateError: the byte string does not hold exactly the statistics of ``pairs``.
    """
    flat = np.frombuffer(blob, np.float32)
    sizes = [np.asarray(template[i]).size for pair in pairs for i in pair]
    if flat.size != sum(sizes):
        raise FederateError(f"BatchNorm statistics hold {flat.size} values, the model has {sum(sizes)}")
    out, start = [], 0
    for (m, v), (sm, sv) in zip(pairs, zip(sizes[::2], sizes[1::2])):
        out.append(flat[start:start + sm].reshape(np.shape(template[m])))
        out.append(flat[start + sm:start + sm + sv].reshape(np.shape(template[v])))
        start += sm + sv
    return out


def pool_stats(per_client: Sequence[Sequence[np.ndarray]], counts: Sequence[float]) -> list[np.ndarray]:
    """Pooled mean and variance of several clients' [mean, var, ...] lists, weighted by their sample counts.

    var = sum_k n_k (var_k + mean_k^2) / N - mean^2: the variance of the union, not the mean of the variances.
    """
    w = np.asarray(counts, np.float64) / float(np.sum(counts))
    out: list[np.ndarray] = []
    for j in range(0, len(per_client[0]), 2):
        mean = sum(wk * np.asarray(s[j], np.float64) for wk, s in zip(w, per_client))
        second = sum(wk * (np.asarray(s[j + 1], np.float64) + np.asarray(s[j], np.float64) ** 2)
                     for wk, s in zip(w, per_client))
        out += [mean.astype(np.float32), np.maximum(second - mean ** 2, 0.0).astype(np.float32)]
    return out
