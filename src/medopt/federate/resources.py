"""Ray resources of a simulated federation: CPUs of the Ray head, CPU/GPU share and torch threads per client.

Its own module so that the simulation (which asks Ray for them) and the Flower client (which sizes its torch
thread pool to its share) both depend on it instead of on each other.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import torch

from medopt.config import ExperimentConfig


def ray_cpus(cfg: ExperimentConfig) -> int:
    """CPUs of the local Ray head the simulation starts."""
    return int(cfg.federate.ray_num_cpus or os.cpu_count() or 1)


def client_cpus(cfg: ExperimentConfig, num_clients: int) -> float:
    """Ray CPUs per client actor: the configured share, else one wave of all clients when they fit 2 per CPU.

    Why one wave: with 1 CPU per client, 3 hospitals on 2 cores train in two waves and one core idles through the
    second (a round takes 2 client-times instead of 1.5). Sharing the cores lets every client train at once; more
    than 2 clients per CPU would mean many idle model copies in memory, so those run in waves of one CPU each.
    The share is rounded down to 0.01 so that Ray's fixed-point resources still fit every actor.
    """
    if cfg.federate.client_cpus is not None:
        return float(cfg.federate.client_cpus)
    if cfg.federate.ray_address:  # the cluster's size is not known here; one CPU each
        return 1.0
    cpus = ray_cpus(cfg)
    if num_clients <= cpus or num_clients > 2 * cpus:
        return 1.0
    return math.floor(100 * cpus / num_clients) / 100


def client_threads(share: float) -> int:
    """Torch threads of a client with ``share`` CPUs (at least one)."""
    return max(1, int(share))


def client_resources(cfg: ExperimentConfig, num_clients: int) -> dict[str, float]:
    """Ray resources per client actor; on local CUDA each client gets a GPU share (default 1 / clients).

    On a joined cluster (``federate.ray_address``) this process's GPUs say nothing about the cluster's, so the
    default there is no GPU: ``federate.client_gpus`` asks for a share.
    """
    gpus = cfg.federate.client_gpus
    if gpus is None:
        local_cuda = not cfg.federate.ray_address and torch.cuda.is_available() and cfg.train.device != "cpu"
        gpus = 1.0 / num_clients if local_cuda else 0.0
    return {"num_cpus": client_cpus(cfg, num_clients), "num_gpus": float(gpus)}


@dataclass(frozen=True)
class SimulationBackend:
    """Where the simulation's Ray runs and what Flower's Ray backend is given."""

    address: str | None
    """Ray cluster to join (``auto``, ``ray://head:10001``); None starts a local head."""
    num_cpus: int
    """CPUs of that local head (unused when joining)."""
    config: dict[str, Any]
    """Flower's ``backend_config``: the per-client Ray resources."""


def simulation_backend(cfg: ExperimentConfig, num_clients: int) -> SimulationBackend:
    """The Ray session and Flower backend config of a federation of ``num_clients``."""
    return SimulationBackend(address=cfg.federate.ray_address, num_cpus=ray_cpus(cfg),
                             config={"client_resources": client_resources(cfg, num_clients)})
