"""What every party must agree on besides the config: the shared model's geometry, plus the clients' data."""

from __future__ import annotations

from dataclasses import dataclass

from medopt.federate.partitions import ClientData
from medopt.models.geometry import ModelGeometry


@dataclass(frozen=True, eq=False)
class ClientBundle:
    """The simulated hospitals' data, shipped once to Ray's object store and read by each client process.

    ``geometry`` comes from the pooled dataset, not a client's share: a label-skewed hospital may lack classes.
    """

    geometry: ModelGeometry
    clients: tuple[ClientData, ...]
