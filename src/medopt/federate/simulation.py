"""Run a federation on Flower's simulation engine over Ray, quietly, and always shut down what it started.

Flower's per-round log and client tracebacks go to the run log (the current ``sys.stderr``, which the pipeline
runner redirects into the run folder); the caller gets one record per round through ``on_round``. With
``federate.ray_address`` the clients run on that Ray cluster instead of a local head (``resources.simulation_backend``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medopt.config import ExperimentConfig
from medopt.federate.errors import FederateError
from medopt.federate.resources import simulation_backend
from medopt.federate.rounds import RoundFn, RoundRecorder
from medopt.federate.task import ClientBundle
from medopt.federate.arrays import NDArrays
from medopt.train.ray_runtime import CurrentStderrHandler

logger = logging.getLogger(__name__)
FLOWER_ENV = {"FLWR_TELEMETRY_ENABLED": "0"}
"""Read by Flower at import time: no usage reports leave the machine (the pods have no internet anyway)."""


@dataclass(frozen=True)
class SimulationOutcome:
    """Final global weights, one record per round, and the wall time of the whole simulation."""

    weights: NDArrays
    rounds: list[dict[str, Any]]
    seconds: float


@contextlib.contextmanager
def routed_flower_logs(level: int = logging.INFO) -> Iterator[None]:
    """Swap the ``flwr`` logger's terminal handler for one that follows ``sys.stderr``; restore afterwards."""
    for key, value in FLOWER_ENV.items():
        os.environ.setdefault(key, value)
    import flwr.supercore.logger  # noqa: F401  (Flower attaches its terminal handler on import: swap it after)

    flwr_log = logging.getLogger("flwr")
    saved = (list(flwr_log.handlers), flwr_log.propagate)
    handler = CurrentStderrHandler(level)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s flwr: %(message)s"))
    flwr_log.handlers, flwr_log.propagate = [handler], False
    try:
        yield
    finally:
        flwr_log.handlers, flwr_log.propagate = saved


def simulate(
    cfg: ExperimentConfig,
    bundle: ClientBundle,
    initial: NDArrays,
    evaluate_fn: Any,
    *,
    run_dir: Path,
    on_round: RoundFn | None = None,
    observer: Any = None,
    fault: Any = None,
    nonnegative: list[bool] | None = None,
    bn_pairs: list[tuple[int, int]] | None = None,
) -> SimulationOutcome:
    """Federate ``cfg.federate.rounds`` rounds over the bundle's clients, one Flower node per client.

    ``evaluate_fn(weights) -> (loss, metrics)`` scores the global model on the held-out test set; ``observer(msg)``
    sees every message the server receives; ``fault(client_id, round)`` drills client failures;
    ``nonnegative`` marks the arrays (BatchNorm variances) kept positive on the server; ``bn_pairs`` indexes the
    (running_mean, running_var) arrays the clients re-estimate for the global weights.

    Raises:
        FederateError: fewer clients than ``federate.min_available_clients``.
    """
    n = len(bundle.clients)
    if n < cfg.federate.min_available_clients:
        raise FederateError(f"federate.min_available_clients={cfg.federate.min_available_clients} but the "
                            f"partition has only {n} clients (data.partition.num_clients)")
    recorder = RoundRecorder(on_round)
    start = time.perf_counter()
    with routed_flower_logs():
        import ray
        from flwr.simulation import run_simulation

        from medopt.federate.flower_client import build_client_app
        from medopt.federate.server import build_server_app
        from medopt.train.ray_runtime import ray_session

        max_weight = float(max(len(c.train) for c in bundle.clients))
        server_app, holder = build_server_app(cfg.model_dump_json(), initial, evaluate_fn, recorder, num_clients=n,
                                              observer=observer, secagg_max_weight=max_weight,
                                              nonnegative=nonnegative, bn_pairs=bn_pairs)
        backend = simulation_backend(cfg, n)
        with ray_session(run_dir, address=backend.address, num_cpus=backend.num_cpus):
            client_app = build_client_app(ray.put(bundle), secagg=cfg.federate.secagg, fault=fault)
            run_simulation(server_app=server_app, client_app=client_app, num_supernodes=n,
                           backend_config=backend.config)
    if not holder:
        raise FederateError("the Flower ServerApp never started; see the run log for Flower's error")
    return SimulationOutcome(holder[0].current, recorder.rounds, time.perf_counter() - start)
