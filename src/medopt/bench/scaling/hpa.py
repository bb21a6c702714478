"""Kubernetes' Horizontal Pod Autoscaler, what KServe's RawDeployment ("Standard") mode creates, as a pure controller.

Why: the raw-deployment baseline scales on CPU (KServe default 80%) or on a per-replica concurrency / rps value, with
the HPA's own damping (10% tolerance, a 300 s scale-down stabilization window, the default scale-up policies), so the
bench compares against what such a deployment really does rather than an idealised ratio rule.

Modelled from pkg/controller/podautoscaler (replica_calculator.go, horizontal.go), with these simplifications:

- the metric is the per-ready-replica value averaged over the samples of the last sync period (the HPA reads the
  metrics API's recent window); CPU is relative to the limit (``Sample.cpu``), not the request;
- the proposal is ``ceil(ready × metric / target)``; within the tolerance the current count (the last desired) is
  kept; with no ready replica the current count is kept (no metric);
- recommendations are stabilized like ``stabilizeRecommendationWithBehaviors``: the result is the current count
  clamped to [min of the recommendations in the scale-up window, max of those in the scale-down window];
- scale-up is limited by the default policies (selectPolicy Max): within ``scale_up_period_s`` at most
  ``max(scale_up_pods, scale_up_percent% of the count at the period's start)`` more; scale-down policies are the
  default 100% per period, i.e. no limit;
- unready pods are not given the HPA's 0% / 100% assumptions (the simulator reports ready replicas only).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from medopt.bench.scaling.controller import Decision, Sample


class HpaConfig(BaseModel):
    """HPA spec + behavior fields (seconds in ``*_s``). ``target_utilization`` applies to ``metric="cpu"``;
    ``target_value`` (per replica) is required for ``concurrency`` and ``rps``."""

    model_config = ConfigDict(extra="forbid")
    metric: Literal["cpu", "concurrency", "rps"] = "cpu"
    target_utilization: float = Field(0.8, gt=0, le=10)
    target_value: float | None = Field(None, gt=0)
    tolerance: float = Field(0.1, ge=0, lt=1)
    sync_period_s: float = Field(15.0, gt=0)
    scale_down_stabilization_s: float = Field(300.0, ge=0)
    scale_up_stabilization_s: float = Field(0.0, ge=0)
    scale_up_pods: int = Field(4, ge=1)
    scale_up_percent: float = Field(100.0, gt=0)
    scale_up_period_s: float = Field(15.0, gt=0)
    min_replicas: int = Field(1, ge=1)
    max_replicas: int = Field(10, ge=1)
    initial_replicas: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> HpaConfig:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas {self.min_replicas} > max_replicas {self.max_replicas}")
        if self.metric != "cpu" and self.target_value is None:
            raise ValueError(f"metric {self.metric!r} needs target_value (per replica)")
        return self

    def scaled(self, factor: float) -> HpaConfig:
        """A copy with every time setting (sync period, stabilization windows, policy period) times ``factor``."""
        if not factor > 0:
            raise ValueError(f"time scale factor must be > 0, got {factor}")
        keys = ("sync_period_s", "scale_down_stabilization_s", "scale_up_stabilization_s", "scale_up_period_s")
        return HpaConfig.model_validate({**self.model_dump(), **{k: getattr(self, k) * factor for k in keys}})

    def target(self) -> float:
        return self.target_utilization if self.metric == "cpu" else float(self.target_value or 0.0)


def _per_replica(sample: Sample, metric: str) -> float | None:
    if metric == "cpu":
        return sample.cpu if sample.ready > 0 else None
    if sample.ready <= 0:
        return None
    return (sample.concurrency if metric == "concurrency" else sample.rps) / sample.ready


class HpaController:
    """The HPA's replica calculation and behavior, deciding every ``sync_period_s``."""

    name = "hpa"

    def __init__(self, config: HpaConfig | None = None) -> None:
        self.config = config or HpaConfig()
        self.tick_s = self.config.sync_period_s
        self._samples: deque[tuple[float, float]] = deque()
        self._recs: deque[tuple[float, int]] = deque()
        self._ups: deque[tuple[float, int]] = deque()
        self._current = min(max(self.config.initial_replicas, self.config.min_replicas), self.config.max_replicas)
        self._seen = False

    def observe(self, sample: Sample) -> None:
        """Keep the per-replica metric of the sample (none when no replica was ready)."""
        self._seen = True
        value = _per_replica(sample, self.config.metric)
        if value is not None:
            self._samples.append((sample.at, value))
        horizon = max(self.config.sync_period_s, 1.0) * 4
        while self._samples and self._samples[0][0] < sample.at - horizon:
            self._samples.popleft()

    def metric(self, now: float) -> float | None:
        """Mean per-replica metric over ``(now - sync_period_s, now]``; None without samples there."""
        lo = now - self.config.sync_period_s + 1e-9
        values = [v for t, v in self._samples if lo <= t <= now + 1e-9]
        return sum(values) / len(values) if values else None

    def decide(self, now: float, ready: int) -> Decision:
        cfg = self.config
        current = self._current
        target = cfg.target()
        if not self._seen:
            return Decision(at=now, desired=current, mode="initial", detail={"target": target})
        value = self.metric(now)
        ratio = None
        if value is None or ready <= 0:
            proposal = current
        else:
            ratio = value / target
            proposal = current if abs(ratio - 1.0) <= cfg.tolerance + 1e-12 else math.ceil(ready * ratio - 1e-9)

        self._recs.append((now, proposal))
        keep = max(cfg.scale_down_stabilization_s, cfg.scale_up_stabilization_s)
        while self._recs and self._recs[0][0] <= now - keep + 1e-9 and len(self._recs) > 1:
            self._recs.popleft()
        # Recommendations strictly after ``now - window`` (the current one always counts).
        up = min([r for t, r in self._recs if t > now - cfg.scale_up_stabilization_s + 1e-9] + [proposal])
        down = max([r for t, r in self._recs if t > now - cfg.scale_down_stabilization_s + 1e-9] + [proposal])
        stabilized = min(max(current, up), down)

        # Default scale-up policies (selectPolicy Max), relative to the count at the start of the policy period.
        while self._ups and self._ups[0][0] <= now - cfg.scale_up_period_s + 1e-9:
            self._ups.popleft()
        period_start = current - sum(d for _, d in self._ups)
        up_limit = max(period_start + cfg.scale_up_pods,
                       math.ceil(period_start * (1.0 + cfg.scale_up_percent / 100.0) - 1e-9))
        desired = min(stabilized, up_limit) if stabilized > current else stabilized
        desired = min(max(desired, cfg.min_replicas), cfg.max_replicas)
        if desired > current:
            self._ups.append((now, desired - current))
        self._current = desired
        return Decision(at=now, desired=desired, mode="stable", detail={
            "metric": value, "target": target, "ratio": ratio, "proposal": proposal,
            "stabilized": stabilized, "up_limit": up_limit})
