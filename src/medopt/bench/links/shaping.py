"""When each byte crossing one direction of an emulated link arrives: rate, delay, jitter and loss as arithmetic.

Why separate from the proxy: the schedule is the model the calibration is checked against, so it is plain numpy with
no sockets, and the proxy only sleeps until the times it is given.

The model, per direction (one ``Shaper`` shared by every connection over the link, as a real bottleneck is):

* a chunk read from a socket is cut into segments of ``MSS`` bytes;
* the segments are serialized one after another at the direction's rate on a clock shared by all connections (a
  token bucket one segment deep): segment ``i`` leaves at ``free_at + bytes_so_far * 8 / rate``;
* each segment then takes ``rtt / 2 + e`` to arrive, ``e`` drawn per segment from a normal truncated at two of its
  standard deviations and scaled so its standard deviation is ``jitter_ms`` (symmetric: the median delay stays
  ``rtt / 2``); a delay is never below zero;
* with probability ``loss_pct`` a segment is "lost": it arrives one retransmission timeout (``LinkProfile.rto_ms``)
  late. That is what a loss costs an application over TCP: the stream stalls until the retransmission arrives;
* arrivals are never earlier than the connection's previous arrival: TCP delivers in order, so a late (jittered or
  lost) segment holds back the ones behind it (head-of-line blocking), while the link keeps serializing.

This userspace model turns loss into delay; kernel mode (``netns``) drops real packets and lets the kernel's TCP
react (fast retransmit, congestion control).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from medopt.bench.links.profiles import LinkProfile

MSS = 1448  # TCP payload of a 1500-byte MTU segment with timestamps: the unit of serialization and loss
TRUNCATE_SD = 2.0  # the jitter normal is cut at +-2 of its own standard deviations


def truncated_normal_sd(a: float = TRUNCATE_SD) -> float:
    """Standard deviation of a standard normal truncated at ``+-a`` (0.8796 for a = 2)."""
    pdf = math.exp(-a * a / 2) / math.sqrt(2 * math.pi)
    return math.sqrt(1 - 2 * a * pdf / math.erf(a / math.sqrt(2)))


@dataclass
class Shaper:
    """One direction of one link: its serialization clock, random draws and counters."""

    rate_mbit: float | None  # None: not rate-limited (kernel mode shapes the rate itself)
    one_way_s: float
    jitter_s: float
    loss: float  # probability per segment, 0..1
    rto_s: float
    rng: np.random.Generator
    free_at: float = 0.0  # when the link finishes serializing what it has been given
    bytes: int = 0
    segments: int = 0
    lost: int = 0
    _sigma: float = field(init=False)

    def __post_init__(self) -> None:
        self._sigma = self.jitter_s / truncated_normal_sd()

    def _jitter(self, n: int) -> np.ndarray:
        if self._sigma == 0:
            return np.zeros(n)
        z = self.rng.standard_normal(n)
        bad = np.abs(z) > TRUNCATE_SD
        while bad.any():  # rejection keeps the distribution a truncated normal (clipping would pile up mass)
            z[bad] = self.rng.standard_normal(int(bad.sum()))
            bad = np.abs(z) > TRUNCATE_SD
        return z * self._sigma

    def schedule(self, nbytes: int, now: float, after: float) -> tuple[np.ndarray, np.ndarray]:
        """Segment end offsets into the chunk and their arrival times, for ``nbytes`` read at ``now``.

        ``after`` is the arrival time of the connection's previous byte (in-order delivery).
        """
        n = -(-nbytes // MSS)
        ends = np.minimum(np.arange(1, n + 1, dtype=np.int64) * MSS, nbytes)
        if self.rate_mbit is None:
            sent = np.full(n, now)
        else:
            start = max(now, self.free_at)
            sent = start + ends * (8.0 / (self.rate_mbit * 1e6))
            self.free_at = float(sent[-1])
        arrive = sent + np.maximum(self.one_way_s + self._jitter(n), 0.0)
        if self.loss > 0:
            lost = self.rng.random(n) < self.loss
            arrive = arrive + lost * self.rto_s
            self.lost += int(lost.sum())
        arrive[0] = max(arrive[0], after)
        np.maximum.accumulate(arrive, out=arrive)
        self.bytes += nbytes
        self.segments += n
        return ends, arrive

    def counters(self) -> dict[str, float]:
        """Bytes, segments and lost segments so far (the proxy's loss figure for calibration)."""
        return {"bytes": self.bytes, "segments": self.segments, "lost_segments": self.lost,
                "loss_pct": 100.0 * self.lost / self.segments if self.segments else 0.0}


def shapers(profile: LinkProfile, *, seed: int | None = None, shape_rate: bool = True,
            model_loss: bool = True) -> tuple[Shaper, Shaper]:
    """The (uplink, downlink) shapers of ``profile``; kernel mode turns rate and loss off (the kernel does them)."""
    root = np.random.SeedSequence(seed)
    up_seed, down_seed = root.spawn(2)

    def one(rate: float, seq: np.random.SeedSequence) -> Shaper:
        return Shaper(rate_mbit=rate if shape_rate else None, one_way_s=profile.rtt_ms / 2e3,
                      jitter_s=profile.jitter_ms / 1e3, loss=profile.loss_pct / 100.0 if model_loss else 0.0,
                      rto_s=profile.rto_ms / 1e3, rng=np.random.default_rng(seq))

    return one(profile.uplink, up_seed), one(profile.downlink, down_seed)
