"""Replicas: local KServe model-server processes (``python -m medopt.serve``) started and stopped on demand.

Why real processes: cold start (interpreter, kserve, ONNX Runtime session, warm-up inference) is the cost that makes
autoscaling hard, and it is measured here, start to ready, for every replica. A replica runs with one inference
thread, gets no CPU limit while it starts (a startup boost, so cold starts stay comparable with and without limits)
and is put under its limit the moment it is ready. Scale-down drains: the router stops sending, in-flight requests
finish, then SIGTERM. A replica that exits on its own (or that the router ejected after a failed connection) is noticed by ``reap`` and
counted as died; the controller's
next decision replaces it. Replicas stay in the caller's process group, so killing the run's group ends them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiohttp
import psutil

from medopt.bench.scaling.cgroups import CpuLimits
from medopt.bench.scaling.router import Router
from medopt.bench.scaling.scenario import ReplicaSpec
from medopt.errors import MedoptError

State = Literal["starting", "ready", "draining", "stopped", "died"]


class ReplicaError(MedoptError, RuntimeError):
    """A replica could not be started (bad artifact, or it never became ready)."""


def _last_line(err: Any) -> str:
    if err is None:
        return "no output"
    err.seek(0)
    lines = [ln for ln in err.read().decode(errors="replace").splitlines() if ln.strip()]
    return lines[-1].strip() if lines else "no output"


def free_port() -> int:
    """A port that was free a moment ago (the child binds it; a rare clash shows as a failed start)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Replica:
    name: str
    port: int
    proc: asyncio.subprocess.Process
    started: float
    state: State = "starting"
    ready_after_s: float | None = None
    cpu_seen: float = 0.0
    cpu_at_ready: float = 0.0
    err: Any = field(default=None, repr=False)
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class ReplicaPool:
    """Holds the replicas of one run and moves their count toward the controller's wish."""

    def __init__(self, router: Router, *, artifact: str, store_root: str, spec: ReplicaSpec, model_name: str = "medopt",
                 limits: CpuLimits | None = None, ready_timeout_s: float = 120.0, clock: Any = time.monotonic) -> None:
        if spec.cpu_limit is not None and limits is None:
            raise ReplicaError("replica.cpu_limit is set but no CpuLimits was given to apply it")
        self.router, self.artifact, self.store_root = router, artifact, str(Path(store_root).resolve())
        self.spec, self.model_name, self.limits = spec, model_name, limits
        self.ready_timeout_s, self.clock = ready_timeout_s, clock
        self.replicas: list[Replica] = []
        self.cold_starts_s: list[float] = []
        self.events: list[dict[str, Any]] = []
        self.failed_starts: list[str] = []
        self._serial = 0

    def count(self, state: State) -> int:
        return sum(1 for r in self.replicas if r.state == state)

    def _command(self, port: int) -> list[str]:
        s = self.spec
        return [sys.executable, "-m", "medopt.serve", "--artifact", self.artifact, "--port", str(port),
                "--model-name", self.model_name, "--set", f"store.root={self.store_root}",
                "--set", "serve.enable_grpc=false", "--set", f"serve.threads={s.threads}",
                "--set", f"serve.max_batch_size={s.max_batch_size}", "--set", f"serve.max_latency_ms={s.max_latency_ms}"]

    async def start_one(self) -> Replica:
        self._serial += 1
        port = free_port()
        err = tempfile.TemporaryFile(prefix="medopt-replica-")
        proc = await asyncio.create_subprocess_exec(*self._command(port), stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.DEVNULL, stderr=err)
        replica = Replica(f"replica-{self._serial}", port, proc, self.clock(), err=err)
        self.replicas.append(replica)
        replica.task = asyncio.create_task(self._become_ready(replica))
        self._event("start", replica)
        return replica

    async def _become_ready(self, replica: Replica) -> None:
        url = f"{replica.url}/v2/models/{self.model_name}/ready"
        deadline = replica.started + self.ready_timeout_s
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while replica.state == "starting" and self.clock() < deadline and replica.proc.returncode is None:
                with contextlib.suppress(aiohttp.ClientError, OSError, asyncio.TimeoutError):
                    async with session.get(url) as resp:
                        if resp.status == 200:
                            self._mark_ready(replica)
                            return
                await asyncio.sleep(0.05)
        if replica.state == "starting":
            self.failed_starts.append(f"{replica.name} (exit {replica.proc.returncode}): {_last_line(replica.err)}")
            self._event("failed-start", replica)
            await self._stop(replica, "died")

    def _mark_ready(self, replica: Replica) -> None:
        replica.ready_after_s = self.clock() - replica.started
        if self.limits is not None and self.spec.cpu_limit is not None:
            self.limits.limit(replica.proc.pid, self.spec.cpu_limit, replica.name)
        replica.cpu_seen = replica.cpu_at_ready = self._cpu_seconds(replica)
        replica.state = "ready"
        self.cold_starts_s.append(replica.ready_after_s)
        self.router.add(replica.name, replica.url)
        self._event("ready", replica)

    async def scale_to(self, desired: int) -> None:
        """Start replicas up to ``desired`` (counting those starting), or drain the newest beyond it."""
        self.reap()
        live = [r for r in self.replicas if r.state in ("starting", "ready")]
        for _ in range(desired - len(live)):
            await self.start_one()
        surplus = len(live) - desired
        if surplus > 0:  # starting ones go first (they serve nobody yet), then the newest ready ones
            order = sorted(live, key=lambda r: (r.state != "starting", -r.started))
            for replica in order[:surplus]:
                replica.state = "draining"
                replica.task = asyncio.create_task(self._drain(replica))

    async def _drain(self, replica: Replica) -> None:
        backend = self.router.drain(replica.name)
        while backend is not None and backend.outstanding > 0 and replica.proc.returncode is None:
            await asyncio.sleep(0.02)
        await self._stop(replica, "stopped")

    async def _stop(self, replica: Replica, state: State) -> None:
        self.router.remove(replica.name)
        replica.state = state
        if replica.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                replica.proc.terminate()
            try:
                await asyncio.wait_for(replica.proc.wait(), 10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    replica.proc.kill()
                await replica.proc.wait()
        if replica.err is not None:
            replica.err.close()
            replica.err = None
        self._event(state, replica)

    def reap(self) -> list[Replica]:
        """Replicas whose process exited without being asked: marked died and taken out of the router."""
        dead = [r for r in self.replicas if r.state == "ready" and (r.proc.returncode is not None
                                                                    or r.name not in self.router.backends)]
        for replica in dead:
            self.router.remove(replica.name)
            replica.state = "died"
            if replica.proc.returncode is None:  # ejected by the router but still running: end it
                with contextlib.suppress(ProcessLookupError):
                    replica.proc.kill()
            self._event("died", replica)
        return dead

    def _cpu_seconds(self, replica: Replica) -> float:
        try:
            t = psutil.Process(replica.proc.pid).cpu_times()
        except psutil.Error:
            return replica.cpu_seen
        return float(t.user + t.system)

    def cpu_utilization(self, seconds: float) -> float:
        """Mean CPU use of the ready replicas over the last ``seconds``, as a fraction of each one's limit (or of
        one core without a limit)."""
        ready = [r for r in self.replicas if r.state == "ready"]
        if not ready or seconds <= 0:
            return 0.0
        used = 0.0
        for replica in ready:
            now = self._cpu_seconds(replica)
            used += now - replica.cpu_seen
            replica.cpu_seen = now
        return used / (seconds * len(ready) * (self.spec.cpu_limit or 1.0))

    def cpu_since_ready(self) -> dict[str, float]:
        """CPU seconds each running replica used since it became ready (what serving cost, start-up excluded)."""
        return {r.name: self._cpu_seconds(r) - r.cpu_at_ready for r in self.replicas
                if r.ready_after_s is not None and r.proc.returncode is None}

    def _event(self, what: str, replica: Replica) -> None:
        self.events.append({"t": self.clock(), "event": what, "replica": replica.name, "pid": replica.proc.pid,
                            "ready_after_s": replica.ready_after_s})

    async def close(self) -> None:
        """Stop every replica that is still running (also the starting and draining ones)."""
        for replica in self.replicas:
            if replica.task is not None and not replica.task.done():
                replica.task.cancel()
        await asyncio.gather(*(self._stop(r, "stopped") for r in self.replicas if r.proc.returncode is None),
                             return_exceptions=True)
