"""Emulated links: profiles and their errors, the shaping model, the proxy, calibration, kernel mode and cleanup."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from medopt.bench.links import KernelLink, LinkError, LinkProfile, calibrate, cleanup_stale, get_profile
from medopt.bench.links import load_profiles, run_proxy
from medopt.bench.links import netns
from medopt.bench.links.probe import rates
from medopt.bench.links.profiles import default_profiles
from medopt.bench.links.shaping import shapers
from medopt.errors import MedoptError

FIGURES = ("rtt_ms", "uplink_mbit", "downlink_mbit", "loss_pct")


# --- profiles ------------------------------------------------------------------------------------------------------

def test_shipped_profiles() -> None:
    p = load_profiles()
    assert {"lan", "hospital-wan", "4g", "rural-telemed", "satellite"} <= set(p)
    assert (p["lan"].rtt_ms, p["lan"].uplink, p["lan"].downlink) == (0.5, 1000, 1000)
    assert (p["hospital-wan"].rtt_ms, p["hospital-wan"].jitter_ms, p["hospital-wan"].uplink) == (20, 2, 100)
    g = p["4g"]
    assert (g.rtt_ms, g.jitter_ms, g.uplink, g.downlink, g.loss_pct) == (60, 10, 10, 30, 0.5)
    r = p["rural-telemed"]
    assert (r.rtt_ms, r.jitter_ms, r.uplink, r.downlink, r.loss_pct) == (120, 20, 2, 8, 1)
    s = p["satellite"]
    assert (s.rtt_ms, s.jitter_ms, s.uplink, s.downlink, s.loss_pct) == (600, 30, 5, 25, 0.5)
    assert g.rto_ms == 200 and s.rto_ms == 720  # max(200 ms, rtt + 4 * jitter)
    assert "up 10 / down 30 Mbit/s" in str(g)


def test_profiles_file_adds_and_replaces(tmp_path: Path) -> None:
    f = tmp_path / "links.yaml"
    f.write_text("lan: {rtt_ms: 1, rate_mbit: 50}\nclinic: {rtt_ms: 40, uplink_mbit: 3, downlink_mbit: 9}\n")
    p = load_profiles(str(f))
    assert p["lan"].rate_mbit == 50 and p["clinic"].uplink == 3 and "4g" in p
    assert default_profiles()["lan"].rate_mbit == 1000


@pytest.mark.parametrize(("yaml_text", "words"), [
    ("x: {rtt_ms: 5, rate_mbit: 10, bandwith: 3}", ["'x'", "bandwith", "unknown field"]),
    ("x: {rtt_ms: 5, rate_mbit: -1}", ["'x'", "rate_mbit", "greater than 0", "-1"]),
    ("x: {rtt_ms: 5, rate_mbit: 0}", ["'x'", "rate_mbit", "greater than 0"]),
    ("x: {rtt_ms: 5, uplink_mbit: 0, downlink_mbit: 5}", ["'x'", "uplink_mbit"]),
    ("x: {rtt_ms: -3, rate_mbit: 5}", ["'x'", "rtt_ms", "greater than or equal to 0"]),
    ("x: {rtt_ms: 5, rate_mbit: 5, jitter_ms: -1}", ["'x'", "jitter_ms"]),
    ("x: {rtt_ms: 5, rate_mbit: 5, loss_pct: 101}", ["'x'", "loss_pct", "less than or equal to 100"]),
    ("x: {rtt_ms: 5, uplink_mbit: 5}", ["'x'", "downlink", "rate_mbit or downlink_mbit"]),
    ("x: {rate_mbit: 5}", ["'x'", "rtt_ms", "required"]),
    ("x: {rtt_ms: fast, rate_mbit: 5}", ["'x'", "rtt_ms", "number"]),
    ("x: 5", ["'x'", "mapping"]),
    ("x: {name: y, rtt_ms: 5, rate_mbit: 5}", ["'x'", "name"]),
    ("- just\n- a list", ["mapping"]),
    ("x: {rtt_ms: [1, 2", ["not valid YAML"]),
])
def test_bad_profiles_raise_one_line(tmp_path: Path, yaml_text: str, words: list[str]) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(yaml_text)
    with pytest.raises(LinkError) as info:
        load_profiles(f)
    msg = str(info.value)
    assert "\n" not in msg
    for word in words:
        assert word in msg, msg


def test_bad_profile_built_directly_and_unknown_names(tmp_path: Path) -> None:
    with pytest.raises(LinkError, match=r"link profile 'z': rate_mbit: .*greater than 0"):
        LinkProfile(name="z", rtt_ms=1, rate_mbit=0)
    with pytest.raises(LinkError, match=r"unknown link profile 'moon'; known: 4g, hospital-wan"):
        load_profiles()["moon"]
    with pytest.raises(LinkError, match="unknown link profile 'moon'"):
        get_profile("moon")
    with pytest.raises(LinkError, match="cannot read profiles file"):
        load_profiles(tmp_path / "missing.yaml")
    err = LinkError("x")
    assert isinstance(err, MedoptError) and isinstance(err, ValueError)
    with pytest.raises(LinkError, match="mode must be"):
        calibrate(get_profile("lan"), mode="wire")  # type: ignore[arg-type]


# --- the shaping model -----------------------------------------------------------------------------------------

def test_shaping_delay_jitter_rate_and_order() -> None:
    p = LinkProfile(name="t", rtt_ms=40, jitter_ms=5, rate_mbit=8, loss_pct=2)
    up, _ = shapers(p, seed=1)
    one_way = np.array([up.schedule(1, 0.0, 0.0)[1][0] - 0.0 for _ in range(20000)])
    # single segments at t=0 also queue behind each other on the shared serialization clock: take it out
    ser = np.arange(1, 20001) * 8 / 8e6
    extra = one_way - ser - 0.020
    clean = extra[extra < 0.1]  # without the retransmission delays
    assert abs(np.median(clean)) < 2e-4 and abs(clean.std() - 0.005) < 3e-4 and np.abs(clean).max() <= 0.0114
    assert abs(np.mean(extra > 0.1) - 0.02) < 0.004  # lost segments: one RTO (200 ms) late
    bulk, _ = shapers(LinkProfile(name="b", rtt_ms=40, jitter_ms=5, rate_mbit=8), seed=2)
    ends, times = bulk.schedule(1_000_000, 0.0, 0.0)
    assert ends[-1] == 1_000_000 and np.all(np.diff(times) >= 0)  # in order
    assert abs(times[-1] - (1.0 + 0.020)) < 0.012  # 1 MB at 8 Mbit/s + one way (+ jitter)


def test_goodput_estimate_sees_the_rate_through_a_final_stall() -> None:
    t = list(np.arange(0, 1.0, 0.001)) + [1.2]  # 10 Mbit/s, then the last read 200 ms late
    sizes = [1250] * len(t)
    r = rates(t, sizes)
    assert abs(r["goodput_mbit"] - 10) < 0.2 and r["mean_mbit"] < 8.5


# --- the userspace proxy ---------------------------------------------------------------------------------------

class _Echo:
    """Echo everything; close when the client half-closes."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)


def test_proxy_passes_bytes_both_ways_and_propagates_close() -> None:
    echo = _Echo()
    payload = np.random.default_rng(0).integers(0, 256, 3 << 20, dtype=np.uint8).tobytes()
    profile = LinkProfile(name="fast", rtt_ms=2, jitter_ms=0.5, rate_mbit=400)
    with run_proxy(profile, f"127.0.0.1:{echo.port}") as address:
        host, port = address.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=20) as sock:
            sender = threading.Thread(target=lambda: (sock.sendall(payload), sock.shutdown(socket.SHUT_WR)))
            sender.start()
            got = bytearray()
            while part := sock.recv(1 << 20):  # ends only when the echo's close comes back through the proxy
                got += part
            sender.join()
    assert bytes(got) == payload


def test_upstream_refusing_closes_the_client_and_proxy_dies_with_the_block() -> None:
    dead = socket.create_server(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()
    with pytest.raises(RuntimeError, match="body failed"):
        with run_proxy(get_profile("lan"), f"127.0.0.1:{port}") as address:
            host, pport = address.rsplit(":", 1)
            with socket.create_connection((host, int(pport)), timeout=5) as sock:
                try:
                    assert sock.recv(10) == b""
                except ConnectionResetError:
                    pass
            raise RuntimeError("body failed")
    with pytest.raises(OSError):
        socket.create_connection((host, int(pport)), timeout=2).close()


def test_proxy_that_cannot_start_is_a_link_error() -> None:
    with pytest.raises(LinkError, match=r"exited \(2\): .*expected host:port"):
        with run_proxy(get_profile("lan"), "no-port-here", timeout_s=15):
            pass


# --- userspace calibration -------------------------------------------------------------------------------------

def _assert_calibrated(result: dict) -> None:
    summary = {k: (result[k]["target"], round(result[k]["measured"], 3), result[k]["ok"]) for k in FIGURES}
    print(result["profile"], result["mode"], summary)
    assert result["ok"], summary


@pytest.mark.parametrize("name", ["4g", "rural-telemed"])
def test_userspace_calibration(name: str) -> None:
    _assert_calibrated(calibrate(get_profile(name), mode="userspace", transfer_s=1.5))


# --- kernel mode -----------------------------------------------------------------------------------------------

def _kernel_ready() -> str | None:
    if os.geteuid() != 0:
        return "kernel link mode needs root"
    missing = [t for t in ("ip", "tc", "nft") if shutil.which(t) is None]
    return f"kernel link mode needs {', '.join(missing)}" if missing else None


needs_kernel = pytest.mark.skipif(_kernel_ready() is not None, reason=_kernel_ready() or "")


def _mine() -> list[str]:
    return [ns for ns in netns.list_namespaces() if ns.startswith(f"medopt-{os.getpid()}-")]


def test_kernel_mode_refuses_without_root_or_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    with pytest.raises(LinkError, match=r"needs root .*mode='userspace'"):
        KernelLink(get_profile("4g"))
    monkeypatch.setattr(netns.os, "geteuid", lambda: 0)
    monkeypatch.setattr(netns.shutil, "which", lambda tool: None if tool == "nft" else f"/usr/sbin/{tool}")
    with pytest.raises(LinkError, match=r"needs nft \(apt-get install nftables\)"):
        KernelLink(get_profile("4g"))
    KernelLink(get_profile("lan"))  # no loss: nft is not needed (nothing is built until the block is entered)


@needs_kernel
def test_kernel_calibration_and_cleanup() -> None:
    result = calibrate(get_profile("rural-telemed"), mode="kernel", transfer_s=1.5)
    _assert_calibrated(result)
    assert _mine() == []


@needs_kernel
def test_kernel_link_cleans_up_when_the_body_raises() -> None:
    with pytest.raises(ZeroDivisionError):
        with KernelLink(get_profile("4g")) as link:
            assert set(_mine()) == {link.edge_ns, link.cloud_ns}
            qdisc = subprocess.run(["tc", "-n", link.edge_ns, "qdisc", "show", "dev", netns.EDGE_DEV],
                                   capture_output=True, text=True).stdout
            assert "tbf" in qdisc
            1 / 0
    assert _mine() == []


CHILD = textwrap.dedent("""
    import subprocess, sys, time
    from medopt.bench.links import KernelLink, get_profile
    with KernelLink(get_profile("4g")) as link, link.proxy(9):
        pids = subprocess.run(["ip", "netns", "pids", link.edge_ns], capture_output=True, text=True).stdout.split()
        print(link.edge_ns, link.cloud_ns, *pids, flush=True)
        time.sleep(60)
""")


def _child_link() -> tuple[subprocess.Popen[str], list[str], list[int]]:
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    assert child.stdout is not None
    first = child.stdout.readline().split()
    assert len(first) >= 3, child.communicate(timeout=10)
    return child, first[:2], [int(p) for p in first[2:]]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@needs_kernel
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_killed_run_leaves_nothing_after_cleanup_stale(sig: signal.Signals) -> None:
    child, names, proxy_pids = _child_link()
    try:
        assert set(names) <= set(netns.list_namespaces()) and proxy_pids
        child.send_signal(sig)
        child.wait(timeout=30)
        if sig == signal.SIGTERM:  # the child's own cleanup ran
            assert not set(names) & set(netns.list_namespaces())
        removed = set(cleanup_stale())
        assert set(names) <= removed if sig == signal.SIGKILL else not set(names) & removed
        assert not set(names) & set(netns.list_namespaces())
        deadline = time.monotonic() + 5
        while any(map(_alive, proxy_pids)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(map(_alive, proxy_pids))
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=10)
        for ns in names:
            netns.remove_namespace(ns)


def test_cleanup_stale_spares_live_runs() -> None:
    if _kernel_ready() is not None:
        pytest.skip(_kernel_ready() or "")
    with KernelLink(get_profile("lan")) as link:
        assert link.edge_ns not in cleanup_stale()
        assert link.edge_ns in netns.list_namespaces()
    assert _mine() == []
