"""The simulator's link model: exact arithmetic without jitter/loss, the proxy's shaper as the reference otherwise."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medopt.bench.links.profiles import LinkProfile
from medopt.bench.links.shaping import MSS, Shaper
from medopt.bench.scaling.netmodel import Direction, link_model, segments, transfer_ms


def _direction(rate: float = 10.0, one_way_ms: float = 30.0, jitter_ms: float = 0.0, loss: float = 0.0,
               rto_ms: float = 200.0, shared: bool = True, seed: int = 0) -> Direction:
    return Direction(rate_mbit=rate, one_way_s=one_way_ms / 1e3, jitter_s=jitter_ms / 1e3, loss=loss,
                     rto_s=rto_ms / 1e3, rng=np.random.default_rng(seed), shared=shared)


def test_transfer_is_exactly_bytes_over_rate_plus_half_rtt_without_jitter_or_loss() -> None:
    d = _direction(rate=10.0, one_way_ms=30.0, shared=False)
    send = np.array([0.0, 0.001, 5.0])
    got = d.deliver(100_000, send) - send
    assert got == pytest.approx(np.full(3, 0.030 + 100_000 * 8 / 10e6), abs=1e-12)


def test_round_trip_formula_and_the_model_agree_on_an_idle_link() -> None:
    link = LinkProfile(name="x", rtt_ms=60, uplink_mbit=10, downlink_mbit=30)
    assert transfer_ms(link, 50_000, 1_000) == pytest.approx(60 + 50_000 * 8 / 10e3 + 1_000 * 8 / 30e3)
    net = link_model(link, seed=1)
    up = net.upload(50_000, np.array([1.0]))
    down = net.download(1_000, up)
    assert (down[0] - 1.0) * 1e3 == pytest.approx(transfer_ms(link, 50_000, 1_000), abs=1e-9)


def test_a_shared_link_serializes_messages_one_after_another() -> None:
    d = _direction(rate=8.0, one_way_ms=0.0)  # 1 MB/s: 10 kB take 10 ms
    got = d.deliver(10_000, np.array([0.0, 0.0, 0.0, 1.0]))
    assert got == pytest.approx([0.010, 0.020, 0.030, 1.010], abs=1e-12)


def test_vectorised_shared_clock_matches_the_proxy_shaper_message_by_message() -> None:
    rng = np.random.default_rng(3)
    send = np.sort(rng.uniform(0, 1.0, 300))
    shaper = Shaper(rate_mbit=5.0, one_way_s=0.02, jitter_s=0.0, loss=0.0, rto_s=0.2, rng=np.random.default_rng(0))
    want = [float(shaper.schedule(7_000, float(t), 0.0)[1][-1]) for t in send]
    got = _direction(rate=5.0, one_way_ms=20.0).deliver(7_000, send)
    assert got == pytest.approx(np.asarray(want), abs=1e-9)


def test_unsorted_sends_are_served_in_send_order() -> None:
    d = _direction(rate=8.0, one_way_ms=0.0)
    got = d.deliver(10_000, np.array([1.0, 0.0]))
    assert got == pytest.approx([1.010, 0.010])


def test_every_segment_lost_costs_one_rto_not_one_per_segment_as_in_the_proxy() -> None:
    nbytes = 10 * MSS
    shaper = Shaper(rate_mbit=10.0, one_way_s=0.01, jitter_s=0.0, loss=1.0, rto_s=0.2, rng=np.random.default_rng(0))
    want = float(shaper.schedule(nbytes, 0.0, 0.0)[1][-1])
    got = _direction(rate=10.0, one_way_ms=10.0, loss=1.0).deliver(nbytes, np.array([0.0]))
    assert got[0] == pytest.approx(want)
    assert got[0] == pytest.approx(0.01 + nbytes * 8 / 10e6 + 0.2)


def test_loss_delays_a_message_when_any_of_its_segments_is_lost() -> None:
    nbytes, p = 5 * MSS, 0.02
    d = _direction(rate=1000.0, one_way_ms=10.0, loss=p, shared=False, seed=7)
    extra = d.deliver(nbytes, np.zeros(40_000)) - (0.01 + nbytes * 8 / 1e9)
    stalled = np.mean(extra > 0.1)
    assert stalled == pytest.approx(1 - (1 - p) ** segments(nbytes), rel=0.08)
    assert np.max(extra) < 0.2 + 1e-3  # never more than one RTO on an otherwise idle link


def test_jitter_has_the_profile_sd_and_keeps_the_median_delay() -> None:
    d = _direction(rate=1000.0, one_way_ms=50.0, jitter_ms=10.0, shared=False, seed=11)
    delay = (d.deliver(100, np.zeros(50_000)) - 100 * 8 / 1e9) * 1e3
    assert np.median(delay) == pytest.approx(50.0, abs=0.3)
    assert np.std(delay) == pytest.approx(10.0, rel=0.03)
    assert delay.min() >= 50.0 - 2 * 10.0 / 0.8796 - 1e-6  # truncated at two of the normal's sd


def test_jitter_never_makes_a_delay_negative() -> None:
    d = _direction(rate=1000.0, one_way_ms=1.0, jitter_ms=20.0, shared=False, seed=2)
    send = np.zeros(10_000)
    assert np.all(d.deliver(100, send) >= send)


def test_segments_round_up_and_count_an_empty_body_as_one() -> None:
    assert (segments(0), segments(1), segments(MSS), segments(MSS + 1)) == (1, 1, 1, 2)
    assert math.ceil(100_000 / 1448) == segments(100_000)


def test_same_seed_same_draws() -> None:
    link = LinkProfile(name="j", rtt_ms=60, jitter_ms=10, rate_mbit=10, loss_pct=1)
    send = np.linspace(0, 10, 200)
    a = link_model(link, seed=5).upload(30_000, send)
    b = link_model(link, seed=5).upload(30_000, send)
    c = link_model(link, seed=6).upload(30_000, send)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_handshake_adds_one_rtt_before_the_first_byte() -> None:
    link = LinkProfile(name="h", rtt_ms=100, rate_mbit=1000)
    plain = link_model(link, handshake=False).upload(100, np.array([0.0]))[0]
    shaken = link_model(link, handshake=True).upload(100, np.array([0.0]))[0]
    assert shaken == pytest.approx(0.15)
    assert shaken - plain == pytest.approx(0.1, abs=1e-5)
