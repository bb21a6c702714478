"""One autoscaling scenario, and the figures a run of it yields — the same for a real run and a simulated one.

Why shared: the simulator is validated by running the very same ``ScalingScenario`` for real and in simulation and
comparing two ``summarize`` outputs field by field (p50, p99, the replica trajectory).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from medopt.bench.arrivals import ArrivalSpec
from medopt.bench.latency import percentiles

ControllerKind = Literal["kpa", "hpa", "slo", "fixed"]


class ControllerSpec(BaseModel):
    """Which controller, and its settings by their upstream names (Knative ``config-autoscaler`` keys for KPA,
    HPA behaviour fields for HPA); unknown settings are rejected by the controller's own config model."""

    model_config = ConfigDict(extra="forbid")
    kind: ControllerKind = "kpa"
    settings: dict[str, Any] = Field(default_factory=dict)


# The benchmarks' bursty trace, (seconds, rate as a multiple of a base): quiet, a ramp to the peak, back, one burst,
# quiet. autoscale.py scales it to one replica's capacity on this machine, regime.py to a hospital network's peak.
BURSTY_TRACE: tuple[tuple[float, float], ...] = ((60, 0.5), (20, 1.2), (20, 2.0), (40, 3.0), (20, 1.5), (50, 0.5),
                                                 (15, 1.8), (55, 0.5))


class ReplicaSpec(BaseModel):
    """How each replica serves: requests run ``max_batch_size`` at a time on one worker thread, under ``cpu_limit``
    cores (a pod's ``resources.limits.cpu``; None: no limit)."""

    model_config = ConfigDict(extra="forbid")
    max_batch_size: int = Field(1, ge=1, le=64)
    max_latency_ms: float = Field(2.0, ge=0)
    threads: int = Field(1, ge=1)
    cpu_limit: float | None = Field(None, gt=0)
    cfs_period_ms: float = Field(100.0, gt=0, description="CFS period of the CPU limit (the kubelet's default).")


class ScalingScenario(BaseModel):
    """Load, controller, replica bounds and the SLO of one run."""

    model_config = ConfigDict(extra="forbid")
    name: str = "scenario"
    arrival: ArrivalSpec = Field(default_factory=ArrivalSpec)
    controller: ControllerSpec = Field(default_factory=ControllerSpec)
    replica: ReplicaSpec = Field(default_factory=ReplicaSpec)
    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(4, ge=1)
    initial_replicas: int = Field(1, ge=0)
    container_concurrency: int = Field(0, ge=0, description="Most requests in flight per replica; 0: unlimited.")
    queue_limit: int = Field(256, ge=1, description="Requests the router buffers; beyond it, 503.")
    slo_ms: float = Field(200.0, gt=0)
    sample_s: float = Field(1.0, gt=0, description="Metric scrape period (Knative: 1 s).")
    timeout_s: float = Field(10.0, gt=0)

    @model_validator(mode="after")
    def _bounds(self) -> ScalingScenario:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas {self.min_replicas} > max_replicas {self.max_replicas}")
        if not self.min_replicas <= self.initial_replicas <= self.max_replicas:
            raise ValueError(f"initial_replicas {self.initial_replicas} outside [{self.min_replicas}, "
                             f"{self.max_replicas}]")
        return self


def replica_seconds(trajectory: Sequence[dict[str, Any]]) -> float:
    """Integral of replicas held (ready + starting + draining: each costs a pod) over the trajectory's sample times
    (left Riemann sum)."""
    if len(trajectory) < 2:
        return 0.0
    t = np.asarray([p["t"] for p in trajectory], dtype=float)
    held = np.asarray([p["ready"] + p.get("starting", 0) + p.get("draining", 0) for p in trajectory], dtype=float)
    return float(np.sum(held[:-1] * np.diff(t)))


def summarize(scenario: ScalingScenario, *, scheduled_s: Sequence[float], latency_ms: Sequence[float],
              ok: Sequence[bool], errors: dict[str, int], trajectory: Sequence[dict[str, Any]],
              cold_starts_s: Sequence[float], source: str) -> dict[str, Any]:
    """The run's figures.

    ``trajectory`` holds one point per sample: ``t``, ``ready``, ``starting``, ``desired``, ``queued``,
    ``draining``, ``concurrency``, ``mode``. SLO attainment counts every request: an error or a timeout misses the SLO.
    """
    lat = np.asarray(latency_ms, dtype=float)
    good = np.asarray(ok, dtype=bool)
    within = good & (lat <= scenario.slo_ms)
    n = len(lat)
    return {
        "scenario": scenario.name, "source": source, "controller": scenario.controller.kind,
        "requests": n, "ok": int(good.sum()), "errors": dict(errors),
        "latency": percentiles(lat[good].tolist()),
        "slo_ms": scenario.slo_ms, "slo_attainment": float(within.sum() / n) if n else 0.0,
        "replica_seconds": replica_seconds(trajectory),
        "max_ready": max((p["ready"] for p in trajectory), default=0),
        "cold_starts": len(cold_starts_s),
        "cold_start_s": percentiles([c * 1000.0 for c in cold_starts_s]) if cold_starts_s else None,
        "trajectory": list(trajectory),
        "samples": {"scheduled_s": [round(float(s), 6) for s in scheduled_s],
                    "latency_ms": [round(float(x), 4) for x in lat], "ok": good.tolist()},
    }
