"""Time-bucketed metric windows, the way Knative's autoscaler averages concurrency.

Why buckets: Knative puts every scrape into a bucket of fixed granularity (1 s) and averages the buckets of the last
window, so the stable (60 s) and panic (6 s) averages come from the same per-second data. This module also holds the
error type every scaling module raises (the lowest module defines it, so nothing imports upward).

Semantics, matched to Knative's ``TimedFloat64Buckets.WindowAverage`` (pkg/autoscaler/aggregation):

- a bucket's value is the mean of the samples recorded in it (our samples are already revision totals, so two
  scrapes in one bucket are averaged, as Knative's older buckets averaged repeated values of one pod);
- the window is the ``ceil(window_s / granularity_s)`` buckets ending at ``now``'s bucket;
- a bucket with no data *between* writes counts as 0 (a gap is assumed to be zero load);
- buckets after the last write are *not* counted (the average covers the window up to the last write), and buckets
  before the first write are not counted either, so a fresh series is not diluted by time before it existed;
- a write after a silence of at least one window starts a new series (Knative resets ``firstWrite``);
- when the last write is a whole window or more before ``now``, the average is 0.
"""

from __future__ import annotations

import bisect
import math

from medopt.errors import MedoptError


class ScalingError(MedoptError, ValueError):
    """A bad autoscaling setting or input (negative window, unknown controller setting, missing profile, ...)."""


class TimedBuckets:
    """Per-bucket means of a metric keyed by bucket index (``floor(t / granularity_s)``); windows average them."""

    def __init__(self, granularity_s: float = 1.0, *, retain_s: float = 7200.0) -> None:
        if granularity_s <= 0:
            raise ScalingError(f"bucket granularity must be > 0 s, got {granularity_s}")
        if retain_s < granularity_s:
            raise ScalingError(f"retain_s {retain_s} must be >= granularity {granularity_s}")
        self.granularity_s = float(granularity_s)
        self.retain_s = float(retain_s)
        self._keys: list[int] = []  # sorted bucket indices that hold data
        self._sum: dict[int, float] = {}
        self._count: dict[int, int] = {}

    def _index(self, t: float) -> int:
        # The epsilon keeps 3.0 / 0.1 (= 29.999...) in bucket 30, as a caller who wrote 3.0 means.
        return math.floor(t / self.granularity_s + 1e-9)

    def _nbuckets(self, window_s: float) -> int:
        if window_s <= 0:
            raise ScalingError(f"window must be > 0 s, got {window_s}")
        return max(1, math.ceil(window_s / self.granularity_s - 1e-9))

    def __len__(self) -> int:
        return len(self._keys)

    def is_empty(self) -> bool:
        return not self._keys

    def last_write(self) -> float | None:
        """Start time of the newest bucket holding data."""
        return self._keys[-1] * self.granularity_s if self._keys else None

    def record(self, at: float, value: float) -> None:
        """Add one sample at ``at``; buckets older than ``retain_s`` before it are dropped."""
        i = self._index(at)
        if i not in self._sum:
            bisect.insort(self._keys, i)
            self._sum[i] = 0.0
            self._count[i] = 0
        self._sum[i] += float(value)
        self._count[i] += 1
        cutoff = i - math.ceil(self.retain_s / self.granularity_s)
        while self._keys and self._keys[0] < cutoff:
            old = self._keys.pop(0)
            del self._sum[old], self._count[old]

    def value(self, index: int) -> float:
        return self._sum[index] / self._count[index] if index in self._sum else 0.0

    def window_average(self, now: float, window_s: float) -> float:
        """Mean per bucket over the ``window_s`` ending at ``now``, with Knative's treatment of empty buckets (see the
        module docstring); 0.0 when no data lies in the window."""
        n = self._nbuckets(window_s)
        end = self._index(now)
        start = end - n + 1
        lo = bisect.bisect_left(self._keys, start)
        hi = bisect.bisect_right(self._keys, end)
        inside = self._keys[lo:hi]
        if not inside:
            return 0.0
        last = inside[-1]
        first = inside[0]
        # Does the series that holds ``first`` begin before the window? Only if the previous write is closer than a
        # window (otherwise Knative restarted the series at ``first``).
        if lo > 0 and first - self._keys[lo - 1] < n:
            first = start
        total = sum(self.value(k) for k in inside)
        return total / (last - first + 1)
