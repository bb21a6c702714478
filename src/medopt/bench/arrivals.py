"""Arrival schedules for open-loop load: when each request is *meant* to be sent, in seconds from the start.

Why schedules rather than sleeps in the sender: latency is measured from the scheduled time, so a stalled server (or a
lagging client) shows in the tail instead of silently lowering the offered rate (coordinated omission).

Poisson arrivals are drawn conditioned on their count: ``round(rate x duration)`` points, uniform on the interval and
sorted, which is exactly a Poisson process given N(duration) = n. The offered rate is then the target rate, so
"achieved within 1% of target" measures the generator and server rather than the draw's luck.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from medopt.errors import MedoptError

ArrivalKind = Literal["constant", "poisson", "gamma", "onoff", "step", "spike", "trace"]


class ArrivalError(MedoptError, ValueError):
    """An arrival profile that cannot produce a schedule (bad rate, empty trace, unreadable trace file)."""


class Segment(BaseModel):
    """A piece of a step profile: ``rate`` requests/s for ``seconds``."""

    model_config = ConfigDict(extra="forbid")
    seconds: float = Field(gt=0)
    rate: float = Field(ge=0)


class ArrivalSpec(BaseModel):
    """One arrival profile; fields that a kind does not use are ignored by it.

    - constant / poisson: ``rate`` for ``duration_s``;
    - gamma: renewal process with gamma gaps of mean 1/rate and coefficient of variation ``cv`` (>1 is bursty);
    - onoff: ``rate`` during ``on_s``, silence during ``off_s``, repeated (Poisson within on-periods);
    - step: ``segments`` in order (Poisson within each);
    - spike: ``rate`` with ``spike_rate`` during ``[spike_at_s, spike_at_s + spike_s)``;
    - trace: the timestamps (s) in ``trace`` or in the file ``trace_file`` (one per line), shifted to start at 0 and
      divided by ``speedup``.
    """

    model_config = ConfigDict(extra="forbid")
    kind: ArrivalKind = "poisson"
    rate: float = Field(default=10.0, ge=0)
    duration_s: float = Field(default=10.0, gt=0)
    seed: int = 0
    cv: float = Field(default=2.0, gt=0)
    on_s: float = Field(default=1.0, gt=0)
    off_s: float = Field(default=1.0, ge=0)
    segments: list[Segment] = Field(default_factory=list)
    spike_rate: float = Field(default=0.0, ge=0)
    spike_at_s: float = Field(default=0.0, ge=0)
    spike_s: float = Field(default=1.0, gt=0)
    trace: list[float] = Field(default_factory=list)
    trace_file: str | None = None
    speedup: float = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def _kind_needs(self) -> ArrivalSpec:
        if self.kind == "step" and not self.segments:
            raise ValueError("a step profile needs at least one segment")
        if self.kind == "trace" and not self.trace and not self.trace_file:
            raise ValueError("a trace profile needs 'trace' timestamps or a 'trace_file'")
        if self.kind in ("constant", "poisson", "gamma", "onoff") and self.rate <= 0:
            raise ValueError(f"a {self.kind} profile needs rate > 0, got {self.rate}")
        return self


def _conditional_poisson(rng: np.random.Generator, rate: float, start: float, seconds: float) -> np.ndarray:
    n = int(round(rate * seconds))
    return start + np.sort(rng.uniform(0.0, seconds, size=n))


def _piecewise(rng: np.random.Generator, pieces: Sequence[tuple[float, float, float]]) -> np.ndarray:
    """Poisson arrivals over ``(start, seconds, rate)`` pieces."""
    parts = [_conditional_poisson(rng, rate, start, seconds) for start, seconds, rate in pieces if rate > 0]
    return np.sort(np.concatenate(parts)) if parts else np.zeros(0)


def _gamma(rng: np.random.Generator, spec: ArrivalSpec) -> np.ndarray:
    shape = 1.0 / spec.cv**2
    n = int(round(spec.rate * spec.duration_s))
    gaps = rng.gamma(shape, 1.0 / (spec.rate * shape), size=n)
    times = np.cumsum(gaps) - gaps[0] if n else np.zeros(0)
    span = times[-1] if n > 1 else 0.0
    # Rescale so the n arrivals cover the duration: the offered rate is the target, the burstiness is kept.
    return times * ((spec.duration_s - 1.0 / spec.rate) / span) if span > 0 else times


def _onoff_pieces(spec: ArrivalSpec) -> list[tuple[float, float, float]]:
    pieces, t = [], 0.0
    while t < spec.duration_s:
        on = min(spec.on_s, spec.duration_s - t)
        pieces.append((t, on, spec.rate))
        t += spec.on_s + spec.off_s
    return pieces


def _spike_pieces(spec: ArrivalSpec) -> list[tuple[float, float, float]]:
    start, end = spec.spike_at_s, min(spec.spike_at_s + spec.spike_s, spec.duration_s)
    pieces = [(0.0, start, spec.rate)] if start > 0 else []
    if end > start:
        pieces.append((start, end - start, spec.spike_rate))
    if spec.duration_s > end:
        pieces.append((end, spec.duration_s - end, spec.rate))
    return pieces


def _trace(spec: ArrivalSpec) -> np.ndarray:
    values: Sequence[float] = spec.trace
    if spec.trace_file:
        path = Path(spec.trace_file)
        try:
            values = [float(line) for line in path.read_text().split() if line.strip()]
        except OSError as exc:
            raise ArrivalError(f"cannot read trace file {path}: {exc.strerror}") from None
        except ValueError:
            raise ArrivalError(f"trace file {path}: every line must be one timestamp in seconds") from None
    times = np.sort(np.asarray(values, dtype=float))
    if times.size == 0 or not np.all(np.isfinite(times)):
        raise ArrivalError("trace: needs at least one finite timestamp")
    return (times - times[0]) / spec.speedup


def schedule(spec: ArrivalSpec) -> np.ndarray:
    """Scheduled send times (seconds from the start, sorted) for ``spec``."""
    rng = np.random.default_rng(spec.seed)
    if spec.kind == "constant":
        return np.arange(int(round(spec.rate * spec.duration_s))) / spec.rate
    if spec.kind == "poisson":
        return _conditional_poisson(rng, spec.rate, 0.0, spec.duration_s)
    if spec.kind == "gamma":
        return _gamma(rng, spec)
    if spec.kind == "onoff":
        return _piecewise(rng, _onoff_pieces(spec))
    if spec.kind == "step":
        starts = np.cumsum([0.0] + [s.seconds for s in spec.segments[:-1]])
        return _piecewise(rng, [(float(t), s.seconds, s.rate) for t, s in zip(starts, spec.segments)])
    if spec.kind == "spike":
        return _piecewise(rng, _spike_pieces(spec))
    return _trace(spec)


def schedule_duration(spec: ArrivalSpec, times: np.ndarray) -> float:
    """The interval the schedule covers (its configured duration; a trace's last timestamp plus one mean gap)."""
    if spec.kind == "step":
        return float(sum(s.seconds for s in spec.segments))
    if spec.kind == "trace":
        gap = float(np.mean(np.diff(times))) if times.size > 1 else 1.0
        return float(times[-1] + gap)
    return spec.duration_s
