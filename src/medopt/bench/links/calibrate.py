"""Calibration: does an emulated link deliver the profile's RTT, rate and loss? Target and measured side by side.

Why: a benchmark over an emulated link is only as good as the emulation; a proxy starved of CPU or a qdisc burst
too small for the MTU silently changes the link. Every figure is measured end to end through the emulation with a
probe server (``probe``) at the far end, and flagged ``ok`` within a tolerance:

* RTT: median of 64-byte ping-pongs, +-5 %; enough pings that the median's standard error is a quarter of the
  tolerance (``ping_plan``), spread over concurrent connections to stay quick. It includes the probe's and the
  proxy's own wake-ups (about 0.5-1 ms on this busy two-core machine), so sub-millisecond RTTs (``lan``) miss;
* goodput per direction: a bulk transfer sized to take ``transfer_s`` at the profile rate (longer on lossy links,
  see ``transfer_seconds``), +-10 %; ``measured`` is the rate the stream holds between loss stalls
  (``probe.rates``), ``mean`` the whole transfer's average, stalls included;
* loss, +-0.5 points. Userspace: the share of segments the proxy gave a retransmission delay (its counters,
  both directions). Kernel: the share of numbered UDP datagrams, paced below the link rate, that never arrived,
  per direction; the nft counters are reported next to it.
"""

from __future__ import annotations

import contextlib
import json
import math
import socket
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from medopt.bench.links import probe
from medopt.bench.links.launch import run_proxy
from medopt.bench.links.netns import KernelLink
from medopt.bench.links.profiles import LinkError, LinkProfile

RTT_TOL = 0.05
GOODPUT_TOL = 0.10
LOSS_TOL_PTS = 0.5
MAX_TRANSFER_BYTES = 64 << 20
PING_BUDGET_S = 2.0
UDP_MAX_MBIT = 10.0  # loss datagrams are paced below 40% of the link and this, so the Python receiver keeps up
MAX_PING_CONNECTIONS = 16


def ping_plan(profile: LinkProfile) -> tuple[int, int]:
    """(pings, concurrent connections): enough pings that the median's standard error (1.2533 sd / sqrt n, with RTT
    sd = sqrt 2 * jitter) is a quarter of the tolerance (30..600), over enough connections to take about
    ``PING_BUDGET_S``. Why a quarter: the probe's own wake-ups on a busy machine already spend part of it."""
    n = 30
    if profile.jitter_ms > 0 and profile.rtt_ms > 0:
        se_target = RTT_TOL * profile.rtt_ms / 4
        n = math.ceil((1.2533 * math.sqrt(2) * profile.jitter_ms / se_target) ** 2)
    n = min(600, max(30, n))
    conns = min(MAX_PING_CONNECTIONS, max(1, math.ceil(n * profile.rtt_ms / 1e3 / PING_BUDGET_S)))
    return n, conns


def transfer_seconds(profile: LinkProfile, transfer_s: float | None) -> float:
    """How long a bulk transfer runs: ``transfer_s``, default 1.5 s, or ten retransmission timeouts on a lossy link
    (a transfer must outlast its loss stalls for the rate to show through them)."""
    if transfer_s is not None:
        return transfer_s
    return max(1.5, 10 * profile.rto_ms / 1e3) if profile.loss_pct > 0 else 1.5


def _bytes_for(rate_mbit: float, seconds: float) -> int:
    return int(min(MAX_TRANSFER_BYTES, max(64 << 10, rate_mbit * 1e6 / 8 * seconds)))


def _within(measured: float, target: float, rel: float) -> bool:
    return math.isfinite(measured) and abs(measured - target) <= rel * target


def _connector(host: str, port: int, make: Callable[[], socket.socket] | None = None) -> probe.Connect:
    def connect() -> socket.socket:
        if make is None:
            return socket.create_connection((host, port), timeout=60)
        sock = make()
        sock.settimeout(60)
        sock.connect((host, port))
        return sock
    return connect


def _measure_tcp(profile: LinkProfile, connect: probe.Connect, seconds: float) -> dict[str, Any]:
    n, conns = ping_plan(profile)
    rtts = probe.ping_rtts(connect, n, concurrency=conns)
    out: dict[str, Any] = {"rtt_ms": {
        "target": profile.rtt_ms, "measured": statistics.median(rtts), "pings": len(rtts), "connections": conns,
        "p10": statistics.quantiles(rtts, n=10)[0], "p90": statistics.quantiles(rtts, n=10)[-1]}}
    out["rtt_ms"]["ok"] = _within(out["rtt_ms"]["measured"], profile.rtt_ms, RTT_TOL)
    for key, rate, fn in (("uplink_mbit", profile.uplink, probe.upload),
                          ("downlink_mbit", profile.downlink, probe.download)):
        nbytes = _bytes_for(rate, seconds)
        r = fn(connect, nbytes)
        out[key] = {"target": rate, "measured": r["goodput_mbit"], "mean": r["mean_mbit"], "bytes": nbytes,
                    "seconds": r["seconds"], "ok": _within(r["goodput_mbit"], rate, GOODPUT_TOL)}
    return out


def _loss_entry(target: float, measured: float, **extra: Any) -> dict[str, Any]:
    return {"target": target, "measured": measured, "ok": abs(measured - target) <= LOSS_TOL_PTS, **extra}


def _userspace(profile: LinkProfile, seconds: float, seed: int | None) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="medopt-calibrate-")))
        stats_file = tmp / "proxy-stats.json"
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        server = stack.enter_context(probe.ProbeServer(listener))
        with run_proxy(profile, f"127.0.0.1:{server.port}", seed=seed, stats_file=stats_file) as address:
            host, port = address.rsplit(":", 1)
            out = _measure_tcp(profile, _connector(host, int(port)), seconds)
        if not stats_file.exists():
            raise LinkError(f"link proxy {profile.name!r} wrote no counters to {stats_file}")
        stats = json.loads(stats_file.read_text())
    up, down = stats["uplink"], stats["downlink"]
    segments = up["segments"] + down["segments"]
    lost = up["lost_segments"] + down["lost_segments"]
    out["loss_pct"] = _loss_entry(profile.loss_pct, 100.0 * lost / segments if segments else 0.0,
                                  method="proxy counters: segments given a retransmission delay",
                                  samples=segments, uplink=up["loss_pct"], downlink=down["loss_pct"])
    out["proxy_wake_lateness_ms"] = stats.get("wake_lateness_ms")
    return out


def _udp_loss(link: KernelLink, count: int) -> dict[str, float]:
    """Per direction, the percentage of ``count`` datagrams sent over the veth that did not arrive."""
    out = {}
    for key, src, dst, rate in (("uplink", "edge", "cloud", link.profile.uplink),
                                ("downlink", "cloud", "edge", link.profile.downlink)):
        with contextlib.closing(link.socket(dst, socket.SOCK_DGRAM)) as rx, \
                contextlib.closing(link.socket(src, socket.SOCK_DGRAM)) as tx:
            rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            rx.bind((link.ip(dst), 0))
            with probe.count_datagrams(rx) as seen:
                probe.send_datagrams(tx, rx.getsockname(), count, rate_mbit=min(0.4 * rate, UDP_MAX_MBIT))
            out[key] = 100.0 * (count - len(seen)) / count
    return out


def _kernel(profile: LinkProfile, seconds: float, seed: int | None, datagrams: int) -> dict[str, Any]:
    with KernelLink(profile) as link:
        listener = link.socket("cloud")
        listener.bind((link.cloud_ip, 0))
        with probe.ProbeServer(listener) as server, link.proxy(server.port, seed=seed) as address:
            host, port = address.rsplit(":", 1)
            out = _measure_tcp(profile, _connector(host, int(port), lambda: link.socket("edge")), seconds)
        before = link.nft_counters()
        udp = _udp_loss(link, datagrams)
        after = link.nft_counters()
    nft = {side: {k: after[side][k] - before[side][k] for k in after[side]} for side in after}
    measured = (udp["uplink"] + udp["downlink"]) / 2
    out["loss_pct"] = _loss_entry(profile.loss_pct, measured, method="UDP datagrams lost, mean of both directions",
                                  samples=2 * datagrams, **udp,
                                  ok_each=all(abs(v - profile.loss_pct) <= LOSS_TOL_PTS for v in udp.values()),
                                  nft_udp_phase=nft)
    out["loss_pct"]["ok"] = out["loss_pct"]["ok"] and out["loss_pct"]["ok_each"]
    return out


def calibrate(profile: LinkProfile, mode: Literal["userspace", "kernel"] = "userspace", *,
              transfer_s: float | None = None, seed: int | None = 0, datagrams: int = 3000) -> dict[str, Any]:
    """Measure ``profile`` as emulated in ``mode``; every figure has ``target``, ``measured`` and ``ok``, and the
    top-level ``ok`` is all of them (see the module docstring for the methods and tolerances)."""
    if mode not in ("userspace", "kernel"):
        raise LinkError(f"link mode must be 'userspace' or 'kernel', got {mode!r}")
    seconds = transfer_seconds(profile, transfer_s)
    out = (_userspace(profile, seconds, seed) if mode == "userspace"
           else _kernel(profile, seconds, seed, datagrams))
    figures = ("rtt_ms", "uplink_mbit", "downlink_mbit", "loss_pct")
    return {"profile": profile.name, "mode": mode, **out,
            "tolerances": {"rtt_rel": RTT_TOL, "goodput_rel": GOODPUT_TOL, "loss_pts": LOSS_TOL_PTS},
            "ok": all(bool(out[k]["ok"]) for k in figures)}

