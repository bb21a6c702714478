"""Flower's ServerApp for a medopt federation: validate the config, build the strategy, run the rounds.

The server runs in the driver process (a thread of Flower's simulation), so the global test evaluation, the round
recorder and the message observer are plain Python callables here; only parameters and scalar metrics reach it.
"""

from __future__ import annotations

import logging

from flwr.app import Context
from flwr.server import LegacyContext, ServerConfig
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.serverapp import Grid, ServerApp

from medopt.config import config_from_json
from medopt.federate.grid import MessageObserver, ObservedGrid, wait_for_nodes
from medopt.federate.rounds import RoundRecorder
from medopt.federate.strategy import GlobalEvalFn, MedoptStrategy
from medopt.federate.arrays import NDArrays
from medopt.federate.workflows import evaluate_workflow, fit_workflow

logger = logging.getLogger(__name__)
SECAGG_THRESHOLD = 2 / 3
"""Share of key shares needed to unmask: tolerates a third of a round's clients dropping out mid-protocol."""


def build_server_app(
    config_json: str,
    initial: NDArrays,
    evaluate_fn: GlobalEvalFn,
    recorder: RoundRecorder,
    *,
    num_clients: int,
    observer: MessageObserver | None = None,
    secagg_max_weight: float = 1000.0,
    nonnegative: list[bool] | None = None,
    bn_pairs: list[tuple[int, int]] | None = None,
) -> tuple[ServerApp, list[MedoptStrategy]]:
    """The ServerApp plus a one-element list that receives the strategy (its ``current`` are the final weights).

    ``num_clients`` is the number of hospitals in the federation: round 1 waits (up to the round timeout) until
    that many have registered.
    """
    holder: list[MedoptStrategy] = []
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        cfg = config_from_json(config_json)  # re-validated on the server side, as the clients do
        fed = cfg.federate
        strategy = MedoptStrategy(cfg, initial, evaluate_fn, recorder, nonnegative, bn_pairs)
        holder.append(strategy)
        legacy = LegacyContext(context, config=ServerConfig(num_rounds=fed.rounds, round_timeout=fed.round_timeout_s),
                               strategy=strategy)
        fit = (SecAggPlusWorkflow(num_shares=1.0, reconstruction_threshold=SECAGG_THRESHOLD,
                                  max_weight=secagg_max_weight, timeout=fed.round_timeout_s)
               if fed.secagg else fit_workflow(fed.round_timeout_s))
        workflow = DefaultWorkflow(fit_workflow=fit, evaluate_workflow=evaluate_workflow(fed.round_timeout_s,
                                                                                         recorder))
        wait_for_nodes(grid, num_clients, fed.round_timeout_s or 600.0)
        workflow(ObservedGrid(grid, recorder, observer), legacy)

    return app, holder
