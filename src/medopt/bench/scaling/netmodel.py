"""Per-request network time over a ``LinkProfile``, as arithmetic on whole arrays of requests.

Why its own module: the simulator, the regime map and the planner all need "when does this message arrive", and it
must be the same model the userspace link proxy applies to real bytes (``medopt.bench.links.shaping``, used by
``medopt.bench.links.proxy``), so simulated and emulated links agree. Per direction, as there:

* a message of ``nbytes`` is cut into ``ceil(nbytes / MSS)`` segments (``MSS`` = 1448);
* the segments are serialized back to back at the direction's rate on a clock shared by every request over the link
  (a bottleneck: a message waits while earlier ones are still being serialized), so segment ``k`` leaves at
  ``start + ends_k * 8 / rate`` with ``start = max(send, link free)``;
* each segment then takes ``max(rtt / 2 + e, 0)``, ``e`` a normal truncated at +-2 of its standard deviations and
  scaled so its standard deviation is ``jitter_ms`` (``shaping.truncated_normal_sd``);
* with probability ``loss_pct / 100`` a segment arrives one ``LinkProfile.rto_ms`` late;
* delivery is in order, so the message has arrived when its latest segment has: the maximum over its segments.
  Several lost segments of one message therefore stall it about one RTO, not one RTO each, as in the proxy.

Without jitter, loss or contention a message takes exactly ``rtt / 2 + nbytes * 8 / rate``. Not modelled (nor in
the proxy): in-order coupling of successive requests that share one keep-alive connection.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medopt.bench.links.profiles import LinkProfile
from medopt.bench.links.shaping import MSS, TRUNCATE_SD, truncated_normal_sd

_CHUNK_CELLS = 1 << 20  # requests x segments drawn at once: bounds memory at a few MB per array


def segments(nbytes: int) -> int:
    """TCP segments a message of ``nbytes`` is cut into (at least one: an empty body still sends headers)."""
    return max(1, -(-int(nbytes) // MSS))


def transfer_ms(link: LinkProfile, bytes_up: int, bytes_down: int) -> float:
    """Round trip of one request on an idle link without jitter or loss: ``rtt + up*8/uplink + down*8/downlink``."""
    return link.rtt_ms + bytes_up * 8.0 / (link.uplink * 1e3) + bytes_down * 8.0 / (link.downlink * 1e3)


def _truncated_normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    z = rng.standard_normal(shape)
    bad = np.abs(z) > TRUNCATE_SD
    while bad.any():  # rejection, as shaping does: clipping would pile mass at the bounds
        z[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(z) > TRUNCATE_SD
    return z


@dataclass
class Direction:
    """One direction of a link (its rate, delay, jitter, loss) and the serialization clock requests share."""

    rate_mbit: float
    one_way_s: float
    jitter_s: float
    loss: float  # per segment, 0..1
    rto_s: float
    rng: np.random.Generator
    shared: bool = True  # False: every message has the link to itself (no queueing behind others)

    def deliver(self, nbytes: int, send_at: np.ndarray) -> np.ndarray:
        """Arrival times (s) of one ``nbytes`` message per entry of ``send_at`` (any order; the link serves them in
        send order, ties in index order)."""
        send = np.asarray(send_at, dtype=float)
        if send.size == 0:
            return send.copy()
        order = np.argsort(send, kind="stable")
        ser = nbytes * 8.0 / (self.rate_mbit * 1e6)
        sent = send[order]
        if self.shared:  # Lindley's recursion finish_j = max(send_j, finish_{j-1}) + ser, in closed form
            before = ser * np.arange(sent.size)  # serialization of the messages ahead of each one
            start = before + np.maximum.accumulate(sent - before)
        else:
            start = sent
        arrive = start + self._last_segment_s(nbytes, sent.size)
        out = np.empty_like(arrive)
        out[order] = arrive
        return out

    def _last_segment_s(self, nbytes: int, n: int) -> np.ndarray:
        """Per message: time from its serialization start until its last byte is delivered."""
        m = segments(nbytes)
        ends = np.minimum(np.arange(1, m + 1) * MSS, max(int(nbytes), 1)) * (8.0 / (self.rate_mbit * 1e6))
        if self.jitter_s == 0 and self.loss == 0:
            return np.full(n, ends[-1] + self.one_way_s)
        sigma = self.jitter_s / truncated_normal_sd()
        out = np.empty(n)
        rows = max(1, _CHUNK_CELLS // m)
        for lo in range(0, n, rows):
            k = min(rows, n - lo)
            delay = np.full((k, m), self.one_way_s)
            if sigma > 0:
                delay = np.maximum(delay + sigma * _truncated_normal(self.rng, (k, m)), 0.0)
            if self.loss > 0:
                delay = delay + (self.rng.random((k, m)) < self.loss) * self.rto_s
            out[lo:lo + k] = np.max(ends + delay, axis=1)
        return out


@dataclass
class LinkModel:
    """Both directions of one link: uplink edge -> cloud, downlink cloud -> edge."""

    profile: LinkProfile
    up: Direction
    down: Direction
    handshake: bool = False  # each request opens a connection: its bytes leave one RTT later (proxy --handshake)

    def upload(self, nbytes: int, send_at: np.ndarray) -> np.ndarray:
        """When each request's ``nbytes`` body has fully reached the cloud."""
        arrive = self.up.deliver(nbytes, send_at)
        if self.handshake:
            arrive = np.maximum(arrive, np.asarray(send_at, dtype=float) + 3.0 * self.up.one_way_s)
        return arrive

    def download(self, nbytes: int, send_at: np.ndarray) -> np.ndarray:
        """When each ``nbytes`` response has fully reached the edge."""
        return self.down.deliver(nbytes, send_at)


def link_model(profile: LinkProfile, *, seed: int | np.random.SeedSequence | None = 0, shared: bool = True,
               handshake: bool = False) -> LinkModel:
    """The model of ``profile`` with its own seeded draws (uplink and downlink streams independent)."""
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    up_seq, down_seq = root.spawn(2)

    def one(rate: float, seq: np.random.SeedSequence) -> Direction:
        return Direction(rate_mbit=rate, one_way_s=profile.rtt_ms / 2e3, jitter_s=profile.jitter_ms / 1e3,
                         loss=profile.loss_pct / 100.0, rto_s=profile.rto_ms / 1e3, rng=np.random.default_rng(seq),
                         shared=shared)

    return LinkModel(profile, one(profile.uplink, up_seq), one(profile.downlink, down_seq), handshake=handshake)
