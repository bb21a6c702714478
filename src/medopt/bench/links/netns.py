"""Kernel mode: a real link between two network namespaces, shaped by ``tc`` and made lossy by nftables.

Why: the userspace proxy models loss as delay; here packets are really dropped and the kernel's TCP reacts (fast
retransmit, congestion control), and the rate is enforced per packet by a qdisc, headers included.

The split (this kernel has no netem, see shared/notes/network-emulation.md):

* rate: ``tbf`` on each veth's egress: the edge end shapes the uplink, the cloud end the downlink, so no ingress
  shaping (ifb) is needed. The tbf rate is the profile's payload rate scaled by 1514/1448 (Ethernet + IP + TCP
  headers of a full segment), so a bulk TCP transfer's goodput is the profile's rate, as in userspace mode;
* loss: nftables ``numgen random mod 10000 < N drop`` on the *input* hook of each namespace, for packets arriving
  on the veth (on the output hook a drop makes ``sendto`` fail with EPERM rather than vanish);
* delay and jitter: a userspace proxy (``--delay-only``) inside the edge namespace, listening on the edge's
  loopback and forwarding to the cloud over the veth: ``KernelLink.proxy``. The TCP leg that crosses the shaped,
  lossy veth is therefore a short-RTT one; its retransmissions cost the kernel's RTO and fast-retransmit times.

Cleanup: namespaces are named ``medopt-<pid>-<n>-edge|cloud``; leaving the ``with`` block (normally, by exception,
Ctrl+C, or SIGTERM, which is turned into an exception while the block runs) kills every process left in them and
deletes them, which removes the veths and their qdiscs and nft tables. ``cleanup_stale`` removes the namespaces of
runs whose process is gone (SIGKILL, a crash).
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Literal

from medopt.bench.links.launch import run_proxy
from medopt.bench.links.profiles import LinkError, LinkProfile
from medopt.bench.links.shaping import MSS
from medopt.bench.processes import terminate_on_sigterm

PREFIX = "medopt-"
NAME_RE = re.compile(r"^medopt-(\d+)-(\d+)-(edge|cloud)$")
WIRE_PER_PAYLOAD = (MSS + 32 + 20 + 14) / MSS  # TCP (with timestamps) + IP + Ethernet headers per full segment
EDGE_DEV, CLOUD_DEV = "veth-edge", "veth-cloud"
TBF_QUEUE_MS = 20  # tbf queue: bounds the delay a busy link adds (and the RTT its TCP leg sees while recovering)
CLONE_NEWNET = 0x40000000
Side = Literal["edge", "cloud"]
_counter = itertools.count()


def _run(args: Sequence[str], what: str) -> str:
    """Run one setup command; a failure is a ``LinkError`` quoting its last stderr line."""
    try:
        done = subprocess.run(list(args), capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LinkError(f"kernel link: {what} failed: {exc}") from None
    if done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines()
        raise LinkError(f"kernel link: {what} failed: {last[-1] if last else f'exit {done.returncode}'}")
    return done.stdout


def require_kernel_mode(profile: LinkProfile) -> None:
    """Raise ``LinkError`` unless this process can build a kernel link for ``profile`` (root, ip, tc, nft)."""
    hint = "use mode='userspace' (the asyncio proxy, no root needed)"
    if os.geteuid() != 0:
        raise LinkError(f"kernel link mode needs root (running as uid {os.geteuid()}); {hint}")
    tools = ["ip", "tc"] + (["nft"] if profile.loss_pct > 0 else [])
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pkgs = {"ip": "iproute2", "tc": "iproute2", "nft": "nftables"}
        need = ", ".join(f"{t} (apt-get install {pkgs[t]})" for t in missing)
        raise LinkError(f"kernel link mode needs {need}, not found; {hint}")


def list_namespaces() -> list[str]:
    """Names of the network namespaces ``ip netns`` knows."""
    if shutil.which("ip") is None:
        return []
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _kill_members(ns: str) -> None:
    """SIGTERM, then SIGKILL, every process inside ``ns``."""
    def pids() -> list[int]:
        out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=30).stdout
        return [int(p) for p in out.split() if p.isdigit()]

    for sig, wait in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 2.0)):
        members = pids()
        if not members:
            return
        for pid in members:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and pids():
            time.sleep(0.05)


def remove_namespace(ns: str) -> None:
    """Kill what runs in ``ns`` and delete it (its veth, qdiscs and nft tables go with it); absent is fine."""
    if ns not in list_namespaces():
        return
    _kill_members(ns)
    subprocess.run(["ip", "netns", "del", ns], capture_output=True, text=True, timeout=30)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cleanup_stale(*, everything: bool = False) -> list[str]:
    """Remove ``medopt-<pid>-…`` namespaces whose creating process is gone (or all of them); returns their names.

    Why pid-scoped: another run's live link must survive this one's cleanup.
    """
    removed = []
    for ns in list_namespaces():
        m = NAME_RE.match(ns)
        if m and (everything or not _alive(int(m.group(1)))):
            remove_namespace(ns)
            removed.append(ns)
    return removed


_libc = None


def _setns(fd: int) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise LinkError(f"kernel link: setns failed: {os.strerror(err)}")


def netns_socket(ns: str, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM) -> socket.socket:
    """A socket created inside namespace ``ns`` (it stays there; only the calling thread switches, briefly)."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
        try:
            _setns(target)
            try:
                return socket.socket(family, kind)
            finally:
                _setns(own)
        finally:
            os.close(target)
    finally:
        os.close(own)


class KernelLink:
    """Two namespaces joined by a shaped, lossy veth pair for ``profile``; a context manager (root only)."""

    def __init__(self, profile: LinkProfile, *, subnet: int | None = None) -> None:
        require_kernel_mode(profile)
        self.profile = profile
        n = next(_counter)
        base = f"{PREFIX}{os.getpid()}-{n}"
        self.edge_ns, self.cloud_ns = f"{base}-edge", f"{base}-cloud"
        x = (subnet if subnet is not None else n) % 256  # namespaces are isolated: addresses may repeat across links
        self.edge_ip, self.cloud_ip = f"10.201.{x}.1", f"10.201.{x}.2"
        self._stack = contextlib.ExitStack()

    def ns(self, side: Side) -> str:
        """The namespace of ``side``."""
        return self.edge_ns if side == "edge" else self.cloud_ns

    def ip(self, side: Side) -> str:
        """The veth address of ``side``."""
        return self.edge_ip if side == "edge" else self.cloud_ip

    def exec_prefix(self, side: Side) -> list[str]:
        """Prefix a command with this to run it in ``side``'s namespace (``ip netns exec NS``)."""
        return ["ip", "netns", "exec", self.ns(side)]

    def socket(self, side: Side, kind: int = socket.SOCK_STREAM) -> socket.socket:
        """An IPv4 socket in ``side``'s namespace."""
        return netns_socket(self.ns(side), socket.AF_INET, kind)

    def proxy(self, upstream_port: int, *, seed: int | None = None, stats_file: Path | None = None,
              handshake: bool = False) -> contextlib.AbstractContextManager[str]:
        """The delay/jitter proxy in the edge namespace, forwarding to ``cloud_ip:upstream_port``; yields the
        ``127.0.0.1:port`` (edge loopback) that edge-side clients connect to."""
        return run_proxy(self.profile, f"{self.cloud_ip}:{upstream_port}", seed=seed, stats_file=stats_file,
                         delay_only=True, handshake=handshake, netns=self.edge_ns)

    def __enter__(self) -> KernelLink:
        if threading.current_thread() is threading.main_thread():
            self._stack.enter_context(terminate_on_sigterm())
        self._stack.callback(self._teardown)
        try:
            self._build()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stack.close()

    def _teardown(self) -> None:
        main = threading.current_thread() is threading.main_thread()
        blocked = {signal.SIGINT, signal.SIGTERM}
        if main:  # a second Ctrl+C must not cut the cleanup short; it is delivered once cleanup is done
            signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
        try:
            for ns in (self.edge_ns, self.cloud_ns):
                remove_namespace(ns)
        finally:
            if main:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)

    def _build(self) -> None:
        e, c = self.edge_ns, self.cloud_ns
        for ns in (e, c):
            _run(["ip", "netns", "add", ns], f"creating namespace {ns}")
            _run(["ip", "-n", ns, "link", "set", "lo", "up"], f"bringing up lo in {ns}")
        _run(["ip", "-n", e, "link", "add", EDGE_DEV, "mtu", "1500", "type", "veth", "peer", "name", CLOUD_DEV,
              "netns", c, "mtu", "1500"], "creating the veth pair")
        for ns, dev, addr in ((e, EDGE_DEV, self.edge_ip), (c, CLOUD_DEV, self.cloud_ip)):
            _run(["ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev], f"addressing {dev}")
            _run(["ip", "-n", ns, "link", "set", dev, "up"], f"bringing up {dev}")
        for ns, dev, mbit in ((e, EDGE_DEV, self.profile.uplink), (c, CLOUD_DEV, self.profile.downlink)):
            _run(["tc", "-n", ns, "qdisc", "add", "dev", dev, "root", *tbf_args(mbit)], f"tbf on {dev}")
            if self.profile.loss_pct > 0:
                _nft(ns, nft_ruleset(dev, self.profile.loss_pct))

    def nft_counters(self) -> dict[str, dict[str, int]]:
        """Packets seen and dropped on each side's veth input (kernel mode's own loss tally)."""
        out: dict[str, dict[str, int]] = {}
        if self.profile.loss_pct <= 0:
            return out
        for side in ("edge", "cloud"):
            text = _run(["ip", "netns", "exec", self.ns(side), "nft", "-j", "list", "table", "inet", "medopt"],
                        "reading nft counters")
            counters = [item["rule"] for item in json.loads(text)["nftables"] if "rule" in item]
            packets = [next(x["counter"]["packets"] for x in r["expr"] if "counter" in x) for r in counters]
            out[side] = {"packets": packets[0], "dropped": packets[1]}
        return out


def tbf_args(payload_mbit: float) -> list[str]:
    """``tbf`` settings for a payload rate: headers added, a burst of a few packets (or 2 ms at the rate), and a
    ``TBF_QUEUE_MS`` of queue before tbf drops (measured: a bulk TCP flow over the veth keeps the rate with 20 ms,
    and a longer queue only lengthens its loss recoveries)."""
    wire_bit = payload_mbit * 1e6 * WIRE_PER_PAYLOAD
    burst = max(4 * 1514, int(wire_bit / 8 * 0.002))
    return ["tbf", "rate", f"{int(wire_bit)}bit", "burst", str(burst), "latency", f"{TBF_QUEUE_MS}ms"]


def nft_ruleset(dev: str, loss_pct: float) -> str:
    """An nft table counting every packet arriving on ``dev`` and dropping ``loss_pct`` percent of them."""
    threshold = round(loss_pct * 100)  # numgen ... mod 10000: steps of 0.01 %
    return (f"table inet medopt {{\n  chain input {{\n    type filter hook input priority 0; policy accept;\n"
            f"    iifname \"{dev}\" counter\n"
            f"    iifname \"{dev}\" numgen random mod 10000 < {threshold} counter drop\n  }}\n}}\n")


def _nft(ns: str, ruleset: str) -> None:
    try:
        done = subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=ruleset, capture_output=True,
                              text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LinkError(f"kernel link: nft loss rule in {ns} failed: {exc}") from None
    if done.returncode != 0:
        last = done.stderr.strip().splitlines()
        raise LinkError(f"kernel link: nft loss rule in {ns} failed: {last[-1] if last else done.returncode}")

