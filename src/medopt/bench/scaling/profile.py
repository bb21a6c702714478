"""Measured behaviour of one replica: service times per batch size and cold starts.

Why measured and carried as data: the simulator and the SLO-aware controller must use what this machine did, not an
assumed distribution; both draw from these samples (resampling), and the profile records where it came from.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator


class ServiceProfile(BaseModel):
    """Per-request service times (ms) of one replica, by batch size, and its cold starts (s, process start to
    ready). ``service_ms["1"]`` is required; other keys are batch sizes the replica was measured at."""

    model_config = ConfigDict(extra="forbid")
    model: str = "model"
    service_ms: dict[str, list[float]]
    cold_start_s: list[float] = Field(min_length=1)
    cpu_limit: float | None = None
    threads: int = 1
    cpu_ms: float | None = Field(None, gt=0, description="Replica CPU per request (batch 1); None: all of it.")
    overhead_ms: float = Field(0.0, ge=0, description="Client-side time on top of the service time (load "
                               "generator, router), added to every simulated latency.")
    fingerprint: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _has_batch_one(self) -> ServiceProfile:
        if not self.service_ms.get("1"):
            raise ValueError("service_ms needs samples for batch size 1")
        for key, values in self.service_ms.items():
            if not key.isdigit() or int(key) < 1 or not values or min(values) <= 0:
                raise ValueError(f"service_ms[{key!r}] must be a positive batch size with positive samples")
        return self

    def batch_sizes(self) -> list[int]:
        return sorted(int(k) for k in self.service_ms)

    def samples_ms(self, batch: int = 1) -> np.ndarray:
        """Samples for ``batch``, or for the largest measured size below it scaled linearly (a conservative fill)."""
        key = str(batch)
        if key in self.service_ms:
            return np.asarray(self.service_ms[key], dtype=float)
        below = max(b for b in self.batch_sizes() if b <= batch)
        return np.asarray(self.service_ms[str(below)], dtype=float) * (batch / below)

    def mean_ms(self, batch: int = 1) -> float:
        return float(self.samples_ms(batch).mean())

    def quantile_ms(self, q: float, batch: int = 1) -> float:
        return float(np.quantile(self.samples_ms(batch), q))

    def cpu_share(self) -> float:
        """Fraction of a batch-1 service time that is the replica's CPU (what a CPU limit throttles)."""
        return 1.0 if self.cpu_ms is None else min(1.0, self.cpu_ms / self.mean_ms())

    def mean_cold_start_s(self) -> float:
        return float(np.mean(self.cold_start_s))
