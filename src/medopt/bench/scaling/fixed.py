"""Fixed provisioning: always the same replica count (the "provision for the peak" baseline).

Why a controller at all: the fixed baseline then runs through the very same router/simulator path as the
autoscalers, so its replica-seconds and latencies compare like for like.
"""

from __future__ import annotations

from medopt.bench.scaling.buckets import ScalingError
from medopt.bench.scaling.controller import Decision, Sample


class FixedController:
    """Always ``replicas``; samples are ignored."""

    name = "fixed"

    def __init__(self, replicas: int, *, tick_s: float = 2.0) -> None:
        if replicas < 0:
            raise ScalingError(f"fixed replicas must be >= 0, got {replicas}")
        if tick_s <= 0:
            raise ScalingError(f"tick_s must be > 0, got {tick_s}")
        self.replicas = int(replicas)
        self.tick_s = float(tick_s)

    def observe(self, sample: Sample) -> None:
        """Nothing to learn: the count never changes."""

    def decide(self, now: float, ready: int) -> Decision:
        return Decision(at=now, desired=self.replicas, mode="fixed", activator_in_path=ready == 0,
                        detail={"replicas": self.replicas})
