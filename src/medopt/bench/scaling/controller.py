"""What every autoscaling controller sees and says: one sample per second in, one decision per tick out.

Why a protocol of plain values: the real run (router + replica processes) and the simulator feed the same controller
objects through the same two calls, so a controller validated in one is the controller used in the other. Nothing
here reads a clock; time is the ``at`` / ``now`` the caller passes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Sample:
    """One scrape, taken every second of the run.

    ``concurrency`` is the time-averaged number of requests in the revision over the last second: in flight at the
    replicas plus buffered at the router (Knative's activator reports its buffered requests too). ``rps`` is the
    arrivals over that second. ``cpu`` is the mean CPU utilisation of the ready replicas relative to their CPU
    limit (1.0 = each ready replica used its whole limit), the metric KServe's raw-deployment HPA scales on.
    """

    at: float
    concurrency: float
    rps: float
    ready: int
    cpu: float = 0.0


@dataclass(frozen=True)
class Decision:
    """A controller's answer at ``at``: how many replicas it wants, and why."""

    at: float
    desired: int
    mode: str = "stable"
    activator_in_path: bool = False
    detail: dict[str, Any] = field(default_factory=dict)


class Controller(Protocol):
    """An autoscaler: ``observe`` every sample, ``decide`` every ``tick_s`` seconds."""

    name: str
    tick_s: float

    def observe(self, sample: Sample) -> None:
        """Take one per-second sample (in time order)."""

    def decide(self, now: float, ready: int) -> Decision:
        """The desired replica count at ``now`` given ``ready`` replicas serving."""
