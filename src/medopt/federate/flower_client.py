"""Flower's ClientApp around :mod:`medopt.federate.local_training`: one simulated hospital per Flower node.

The config arrives with every instruction as the serialized ExperimentConfig (the only config entry besides the
round number) and is re-validated here; the data comes from Ray's object store, indexed by the node's partition id.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from flwr.app import Context
from flwr.client import Client, ClientApp, NumPyClient

from medopt.federate.local_training import CONFIG_KEY, ROUND_KEY, evaluate_client, fit_client, parse_config
from medopt.federate.errors import FederateError
from medopt.federate.resources import client_threads
from medopt.federate.task import ClientBundle

FaultFn = Callable[[int, int], None]
"""``fault(client_id, server_round)``, called before local training: raise (or exit) to drill failures."""
PARTITION_KEY = "partition-id"


class HospitalClient(NumPyClient):
    """Trains and evaluates on one hospital's partition with medopt's epoch functions."""

    def __init__(self, client_id: int, bundle: ClientBundle, fault: FaultFn | None) -> None:
        self.client_id = client_id
        self.bundle = bundle
        self.fault = fault

    def _setup(self, config: dict[str, Any]) -> tuple[Any, int]:
        if CONFIG_KEY not in config:
            raise FederateError(f"instruction to client {self.client_id} lacks the '{CONFIG_KEY}' config entry")
        cfg = parse_config(str(config[CONFIG_KEY]))
        torch.set_num_threads(client_threads(cfg.federate.client_cpus or 1.0))
        return cfg, int(config.get(ROUND_KEY, 0))

    def fit(self, parameters: list[np.ndarray], config: dict[str, Any]) -> tuple[list[np.ndarray], int, dict]:
        cfg, server_round = self._setup(config)
        if self.fault is not None:
            self.fault(self.client_id, server_round)
        out = fit_client(cfg, self.bundle.geometry, self.bundle.clients[self.client_id], parameters, server_round)
        return out.weights, out.weight, out.metrics

    def evaluate(self, parameters: list[np.ndarray], config: dict[str, Any]) -> tuple[float, int, dict]:
        cfg, _ = self._setup(config)
        return evaluate_client(cfg, self.bundle.geometry, self.bundle.clients[self.client_id], parameters)


def _resolve(bundle: Any) -> ClientBundle:
    """The bundle itself, or fetched from Ray's object store (zero-copy for the image arrays)."""
    if isinstance(bundle, ClientBundle):
        return bundle
    import ray

    return ray.get(bundle)


def build_client_app(bundle: Any, *, secagg: bool, fault: FaultFn | None = None) -> ClientApp:
    """The ClientApp; ``bundle`` is a ClientBundle or a Ray ObjectRef to one. SecAgg+ adds Flower's client mod."""

    def client_fn(context: Context) -> Client:
        data = _resolve(bundle)
        cid = int(context.node_config[PARTITION_KEY])
        if not 0 <= cid < len(data.clients):
            raise FederateError(f"node partition id {cid} is outside the {len(data.clients)} clients")
        return HospitalClient(cid, data, fault).to_client()

    mods = []
    if secagg:
        from flwr.client.mod import secaggplus_mod

        mods.append(secaggplus_mod)
    return ClientApp(client_fn=client_fn, mods=mods)
