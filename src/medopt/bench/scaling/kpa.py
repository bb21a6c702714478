"""Knative's Pod Autoscaler (KPA), the default KServe Serverless autoscaler, as a pure controller.

Why re-implemented: the bench compares medopt's SLO-aware controller against what KServe users actually get, in the
simulator and over real processes alike, so the decision rule follows Knative's decider
(pkg/autoscaler/scaling/autoscaler.go) and the scale-to-zero / bounds handling of its KPA reconciler, with the
defaults of ``config-autoscaler``. Time is only the ``at`` / ``now`` passed in.

Choices where the upstream is spread over several components (documented so the comparison is honest):

- Panic exit is strict like upstream (``panicTime + stableWindow`` *before* now): a decision exactly one stable window
  after the last trigger is still in panic; the next one is not.
- Idle / scale to zero (only with ``min_scale == 0``): the revision is idle at the first tick at which the decider's
  recommendation is 0 (the stable-window average of concurrency is 0, i.e. a whole stable window with no
  concurrency); from then on the activator is put in the path and one replica is kept until
  ``scale_to_zero_grace_period_s`` have passed since that tick (Knative: the SKS stays in proxy mode for the grace
  period), then 0; with no replica ready there is nothing to keep, so 0 at once. Any traffic resets it.
- Scale from zero: with 0 ready replicas and any traffic in the latest sample (concurrency or rps > 0; the activator
  reports its buffered requests), the desired count is at least 1 at once (Knative's activator pokes the autoscaler).
- Before the first sample the answer is ``initial_scale`` (upstream holds the current scale until it has data).
- ``ceil`` ignores a 1e-9 excess, so a float like 70.00000000001 / 70 does not add a replica (Knative floors its
  window averages to 6 digits for the same reason).
- Only the concurrency metric is modelled (KServe's default ``scaleMetric``).
"""

from __future__ import annotations

import math
from collections import deque

from pydantic import BaseModel, ConfigDict, Field, model_validator

from medopt.bench.scaling.buckets import TimedBuckets
from medopt.bench.scaling.controller import Decision, Sample

TARGET_MIN = 0.01  # Knative's autoscaling.TargetMin


def _ceil(x: float) -> int:
    return math.ceil(x - 1e-9)


class KpaConfig(BaseModel):
    """Knative ``config-autoscaler`` keys and revision annotations, snake_cased, with Knative's defaults.

    ``*_s`` fields are seconds. ``target`` is the ``autoscaling.knative.dev/target`` annotation (None: unset);
    ``max_scale`` 0 means unbounded; ``target_burst_capacity`` -1 keeps the activator always in the path, 0 only
    when no replica is ready. ``tick_s`` is the decision period, ``bucket_s`` the metric bucket width.
    """

    model_config = ConfigDict(extra="forbid")
    container_concurrency: int = Field(0, ge=0)
    target: float | None = Field(None, ge=TARGET_MIN)
    container_concurrency_target_default: float = Field(100.0, ge=TARGET_MIN)
    container_concurrency_target_percentage: float = Field(70.0, gt=0, le=100)
    max_scale_up_rate: float = Field(1000.0, gt=1.0)
    max_scale_down_rate: float = Field(2.0, gt=1.0)
    stable_window_s: float = Field(60.0, gt=0)
    panic_window_percentage: float = Field(10.0, ge=1.0, le=100.0)
    panic_threshold_percentage: float = Field(200.0, ge=110.0, le=1000.0)
    scale_to_zero_grace_period_s: float = Field(30.0, ge=0)
    scale_down_delay_s: float = Field(0.0, ge=0)
    target_burst_capacity: float = Field(211.0, ge=-1)
    activator_capacity: float = Field(100.0, ge=1)
    min_scale: int = Field(1, ge=0)
    max_scale: int = Field(0, ge=0)
    initial_scale: int = Field(1, ge=0)
    tick_s: float = Field(2.0, gt=0)
    bucket_s: float = Field(1.0, gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> KpaConfig:
        if self.max_scale and self.min_scale > self.max_scale:
            raise ValueError(f"min_scale {self.min_scale} > max_scale {self.max_scale}")
        if self.bucket_s > self.stable_window_s:
            raise ValueError(f"bucket_s {self.bucket_s} > stable_window_s {self.stable_window_s}")
        if self.target_burst_capacity < 0 and self.target_burst_capacity != -1:
            raise ValueError("target_burst_capacity must be -1 or >= 0")
        return self

    def scaled(self, factor: float) -> KpaConfig:
        """A copy with every time setting (windows, grace, delay, tick, bucket) multiplied by ``factor``."""
        if not factor > 0:
            raise ValueError(f"time scale factor must be > 0, got {factor}")
        keys = ("stable_window_s", "scale_to_zero_grace_period_s", "scale_down_delay_s", "tick_s", "bucket_s")
        return KpaConfig.model_validate({**self.model_dump(), **{k: getattr(self, k) * factor for k in keys}})

    def total_value(self) -> float:
        """Per-replica capacity Knative scales against before utilisation: CC, else the default; an explicit target
        annotation replaces it (capped at CC when CC > 0)."""
        cc = self.container_concurrency
        total = float(cc) if cc > 0 else self.container_concurrency_target_default
        if self.target is not None:
            total = min(self.target, float(cc)) if cc > 0 else self.target
        return total

    def target_value(self) -> float:
        """Concurrency per replica the KPA aims at: ``max(0.01, total × percentage / 100)``."""
        return max(TARGET_MIN, self.total_value() * self.container_concurrency_target_percentage / 100.0)

    def panic_window_s(self) -> float:
        return self.stable_window_s * self.panic_window_percentage / 100.0


class KpaController:
    """Knative's KPA decider + scale-to-zero + bounds, fed per-second samples of revision concurrency."""

    name = "kpa"

    def __init__(self, config: KpaConfig | None = None) -> None:
        self.config = config or KpaConfig()
        self.tick_s = self.config.tick_s
        self._buckets = TimedBuckets(self.config.bucket_s, retain_s=3 * self.config.stable_window_s)
        self._last: Sample | None = None
        self._panic_since: float | None = None  # last trigger (Knative's panicTime)
        self._panic_started: float | None = None
        self._max_panic_pods = 0
        self._delay: deque[tuple[float, int]] = deque()
        self._idle_since: float | None = None

    def observe(self, sample: Sample) -> None:
        """Record the sample's concurrency in its bucket."""
        self._buckets.record(sample.at, sample.concurrency)
        self._last = sample

    def _delayed(self, now: float, desired: int) -> int:
        """Knative's scale-down delay: the max of the recommendations in ``(now - delay, now]``."""
        delay = self.config.scale_down_delay_s
        if delay <= 0:
            return desired
        self._delay.append((now, desired))
        while self._delay and self._delay[0][0] <= now - delay + 1e-9:
            self._delay.popleft()
        return max(d for _, d in self._delay)

    def decide(self, now: float, ready: int) -> Decision:
        cfg = self.config
        target = cfg.target_value()
        total = cfg.total_value()
        if self._last is None:
            desired = cfg.initial_scale if not cfg.max_scale else min(cfg.initial_scale, cfg.max_scale)
            return Decision(at=now, desired=desired, mode="initial", activator_in_path=ready == 0,
                            detail={"target": target, "reason": "no samples yet"})
        stable = self._buckets.window_average(now, cfg.stable_window_s)
        panic = self._buckets.window_average(now, cfg.panic_window_s())
        r = max(1, ready)
        max_up = math.ceil(cfg.max_scale_up_rate * r)
        max_down = math.floor(r / cfg.max_scale_down_rate)
        dspc = _ceil(stable / target)
        dppc = _ceil(panic / target)
        desired_stable = min(max(dspc, max_down), max_up)
        desired_panic = min(max(dppc, max_down), max_up)

        over = dppc / r >= cfg.panic_threshold_percentage / 100.0 - 1e-12
        if over:
            if self._panic_since is None:
                self._panic_started = now
            self._panic_since = now
        elif self._panic_since is not None and self._panic_since + cfg.stable_window_s < now - 1e-9:
            self._panic_since = None
            self._panic_started = None
            self._max_panic_pods = 0

        desired = desired_stable
        mode = "stable"
        if self._panic_since is not None:
            mode = "panic"
            self._max_panic_pods = max(self._max_panic_pods, desired_stable, desired_panic)
            desired = self._max_panic_pods
        desired = self._delayed(now, desired)

        # Scale to zero (KPA reconciler): activator in the path, one ready replica kept for the grace period
        # (with none ready there is nothing to keep).
        activator = False
        if desired == 0 and cfg.min_scale == 0:
            if self._idle_since is None:
                self._idle_since = now
            activator = True
            if ready > 0 and now - self._idle_since < cfg.scale_to_zero_grace_period_s - 1e-9:
                desired = 1
        else:
            self._idle_since = None
        traffic = self._last.concurrency > 0 or self._last.rps > 0
        if ready == 0 and traffic:
            desired = max(desired, 1)  # scale from zero
            self._idle_since = None
        desired = max(desired, cfg.min_scale)
        if cfg.max_scale:
            desired = min(desired, cfg.max_scale)

        if cfg.target_burst_capacity == 0:
            ebc = 0.0
        elif cfg.target_burst_capacity > 0:
            ebc = float(math.floor(ready * total - cfg.target_burst_capacity - panic))
        else:
            ebc = -1.0
        activator = activator or ebc < 0 or ready == 0
        return Decision(at=now, desired=int(desired), mode=mode, activator_in_path=activator, detail={
            "stable": stable, "panic": panic, "desired_stable": desired_stable, "desired_panic": desired_panic,
            "target": target, "total": total, "ebc": ebc, "panic_since": self._panic_since,
            "panic_started": self._panic_started, "idle_since": self._idle_since,
        })
