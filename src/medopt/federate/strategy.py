"""The server's strategy: sample clients, aggregate their weights (weighted or equal), add DP noise, take the
server-optimizer step, and score the global model on the held-out test set after every round.

A Flower ``Strategy`` so that Flower's workflows (the default one and SecAgg+) drive it; the arithmetic lives in
:mod:`medopt.federate.aggregate` and :mod:`medopt.federate.privacy`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from flwr.common import EvaluateIns, EvaluateRes, FitIns, FitRes, Parameters, ndarrays_to_parameters
from flwr.common import parameters_to_ndarrays
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import Strategy

from medopt.config import ExperimentConfig
from medopt.federate.aggregate import server_optimizer, weighted_average
from medopt.federate.bn_stats import pool_stats, unpack_stats
from medopt.federate.local_training import CONFIG_KEY, COUNT_KEY, ROUND_KEY, STATS_KEY, shares_statistics
from medopt.federate.errors import FederateError
from medopt.federate.privacy import add_gaussian_noise, epsilon, noise_std
from medopt.federate.rounds import RoundRecorder
from medopt.federate.arrays import NDArrays

logger = logging.getLogger(__name__)
CLIENT_SECTIONS = {"name", "seed", "data", "model", "train", "evaluate", "federate"}
"""The config sections a client reads (``local_training``); the rest stays on the server."""
GlobalEvalFn = Callable[[NDArrays], tuple[float, dict[str, float]]]
MIN_VARIANCE = 1e-5


def failure_reason(failure: Any) -> str:
    """The message of a failed reply: a non-OK status, or the error a crashed ClientApp reported."""
    if isinstance(failure, tuple):
        return str(failure[1].status.message)
    error = failure.args[0] if isinstance(failure, Exception) and failure.args else failure
    return str(getattr(error, "reason", error))


class MedoptStrategy(Strategy):
    """FedAvg (weighted or equal), FedProx (client side), FedAvgM/FedAdam/FedYogi, with optional DP noise."""

    def __init__(self, cfg: ExperimentConfig, initial: NDArrays, evaluate_fn: GlobalEvalFn,
                 recorder: RoundRecorder, nonnegative: list[bool] | None = None,
                 bn_pairs: list[tuple[int, int]] | None = None) -> None:
        self.cfg = cfg
        self.nonnegative = nonnegative or [False] * len(initial)
        self.fed = cfg.federate
        # Clients get only the sections they train with: not the store, serving or cluster settings (smaller
        # instructions every round, and nothing about the platform leaves the server).
        self.config_json = cfg.model_dump_json(include=CLIENT_SECTIONS)
        self.current = [np.asarray(a, np.float32) for a in initial]
        self.evaluate_fn = evaluate_fn
        self.recorder = recorder
        self.optimizer = server_optimizer(self.fed)
        self.rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 7]))
        self.dp_rounds = 0
        self.bn_pairs = list(bn_pairs or [])
        self.pooled_statistics = bool(self.bn_pairs) and self.fed.fraction_evaluate > 0 and shares_statistics(cfg)
        self.refreshed = False

    def __repr__(self) -> str:
        return f"MedoptStrategy({self.fed.strategy})"

    def initialize_parameters(self, client_manager: ClientManager) -> Parameters | None:
        return ndarrays_to_parameters(self.current)

    def _instructions(self, server_round: int, parameters: Parameters, client_manager: ClientManager,
                      fraction: float) -> list[ClientProxy]:
        available = client_manager.num_available()
        wanted = max(1, math.ceil(fraction * available))
        return client_manager.sample(num_clients=wanted, min_num_clients=self.fed.min_available_clients)

    def configure_fit(self, server_round: int, parameters: Parameters,
                      client_manager: ClientManager) -> list[tuple[ClientProxy, FitIns]]:
        self.recorder.start(server_round)
        self.current = parameters_to_ndarrays(parameters)
        ins = FitIns(parameters, {CONFIG_KEY: self.config_json, ROUND_KEY: server_round})
        return [(c, ins) for c in self._instructions(server_round, parameters, client_manager, self.fed.fraction_fit)]

    def aggregate_fit(self, server_round: int, results: list[tuple[ClientProxy, FitRes]],
                      failures: list[Any]) -> tuple[Parameters | None, dict[str, Any]]:
        for failure in failures:
            self.recorder.failure(failure_reason(failure))
        for proxy, res in results:
            self.recorder.client_metrics(proxy.node_id, dict(res.metrics), "fit_")
        self.recorder.note(fit_results=len(results))
        if len(results) < self.fed.min_fit_results:
            logger.warning("round %d: %d update(s) < min_fit_results=%d; the global model is unchanged",
                           server_round, len(results), self.fed.min_fit_results)
            return None, {}
        arrays = [parameters_to_ndarrays(res.parameters) for _, res in results]
        mean = weighted_average(arrays, [res.num_examples for _, res in results])
        if self.fed.dp.enabled:
            mean = self._privatize(mean, len(results))
        self.current = self._project(self.optimizer.step(self.current, mean), server_round)
        return ndarrays_to_parameters(self.current), {}

    def _project(self, arrays: NDArrays, server_round: int) -> NDArrays:
        """Keep variances positive (post-processing, so DP guarantees hold) and refuse a non-finite model."""
        out = [np.maximum(a, MIN_VARIANCE) if keep else a for a, keep in zip(arrays, self.nonnegative)]
        if not all(np.isfinite(a).all() for a in out):
            raise FederateError(f"round {server_round}: the aggregated global weights are not finite; lower "
                                "train.lr or federate.server_lr, or raise federate.dp.clip_norm")
        return out

    def _privatize(self, mean: NDArrays, num_results: int) -> NDArrays:
        """Gaussian noise with std z*C/m on the mean update; the budget so far goes into the round record."""
        dp = self.fed.dp
        std = noise_std(dp.clip_norm, dp.noise_multiplier, num_results)
        update = [m.astype(np.float64) - c for m, c in zip(mean, self.current)]
        noisy = add_gaussian_noise(update, std, self.rng)
        self.dp_rounds += 1
        eps, order = epsilon(self.fed.fraction_fit, dp.noise_multiplier, self.dp_rounds, dp.delta)
        self.recorder.note(dp_noise_std=std, epsilon=eps, dp_delta=dp.delta, rdp_order=order)
        return [(c + n).astype(np.float32) for c, n in zip(self.current, noisy)]

    def configure_evaluate(self, server_round: int, parameters: Parameters,
                           client_manager: ClientManager) -> list[tuple[ClientProxy, EvaluateIns]]:
        if self.fed.fraction_evaluate <= 0:
            return []
        ins = EvaluateIns(parameters, {CONFIG_KEY: self.config_json, ROUND_KEY: server_round})
        chosen = self._instructions(server_round, parameters, client_manager, self.fed.fraction_evaluate)
        return [(c, ins) for c in chosen]

    def aggregate_evaluate(self, server_round: int, results: list[tuple[ClientProxy, EvaluateRes]],
                           failures: list[Any]) -> tuple[float | None, dict[str, Any]]:
        for failure in failures:
            self.recorder.failure(failure_reason(failure))
        stats, counts = [], []
        for proxy, res in results:
            metrics = dict(res.metrics)
            blob, count = metrics.pop(STATS_KEY, None), metrics.pop(COUNT_KEY, 0.0)
            if self.pooled_statistics and isinstance(blob, bytes) and float(count) > 0:
                stats.append(unpack_stats(blob, self.current, self.bn_pairs))
                counts.append(float(count))
            self.recorder.client_metrics(proxy.node_id, {**metrics, "loss": res.loss}, "test_")
        if stats:
            self._set_statistics(pool_stats(stats, counts), server_round)
            self.recorder.note(bn_stats_clients=len(stats))
        if self.pooled_statistics:
            self._score(self.current)
        if not results:
            return None, {}
        n = sum(res.num_examples for _, res in results)
        return float(sum(res.loss * res.num_examples for _, res in results) / max(n, 1)), {}

    def _set_statistics(self, pooled: NDArrays, server_round: int) -> None:
        """Put the clients' pooled BatchNorm statistics of the global weights into the global model."""
        for (m, v), mean, var in zip(self.bn_pairs, pooled[::2], pooled[1::2]):
            self.current[m], self.current[v] = mean, var
        self.current = self._project(self.current, server_round)
        self.refreshed = True

    def _score(self, weights: NDArrays) -> tuple[float, dict[str, Any]]:
        loss, metrics = self.evaluate_fn(weights)
        self.recorder.note(test_loss=loss, **{f"test_{k}": v for k, v in metrics.items()})
        return loss, metrics

    def evaluate(self, server_round: int, parameters: Parameters) -> tuple[float, dict[str, Any]] | None:
        """The global test score after each round; deferred to ``aggregate_evaluate`` when the clients' pooled
        BatchNorm statistics are still to come, and skipped for the initial weights (never recorded)."""
        if server_round == 0 or self.pooled_statistics:
            return None
        return self._score(parameters_to_ndarrays(parameters))
