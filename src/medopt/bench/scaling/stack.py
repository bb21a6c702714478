"""The serving side of a real autoscaling run, in its own process: router + replicas + the controller loop.

``python -m medopt.bench.scaling.stack SPEC.json`` starts the initial replicas, waits until they are ready, prints
the router's port on stdout (the bench children's announce protocol), then every ``sample_s`` feeds the controller a
``Sample`` and every ``tick_s`` applies its decision, until SIGTERM or Ctrl+C. On the way out it stops every replica
and writes the run's timeline (trajectory, replica events, cold starts, router counters) to ``result_file``.
A request buffered while no replica is live pokes the controller at once, as Knative's activator does, so a
scale-from-zero does not wait for the next tick.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from medopt.bench.scaling.cgroups import CpuLimits
from medopt.bench.scaling.controller import Controller, Decision
from medopt.bench.scaling.profile import ServiceProfile
from medopt.bench.scaling.replicas import ReplicaPool
from medopt.bench.scaling.router import Router
from medopt.bench.scaling.scenario import ScalingScenario


class StackSpec(BaseModel):
    """Everything the stack process needs."""

    model_config = ConfigDict(extra="forbid")
    scenario: ScalingScenario
    artifact: str
    store_root: str
    result_file: str
    model_name: str = "medopt"
    profile: ServiceProfile | None = None
    time_scale: float = 1.0
    record_backend_times: bool = False


class ControlLoop:
    """Samples the router, feeds the controller, applies its decisions; records the trajectory."""

    def __init__(self, scenario: ScalingScenario, controller: Controller, router: Router, pool: ReplicaPool) -> None:
        self.scenario, self.controller, self.router, self.pool = scenario, controller, router, pool
        self.trajectory: list[dict[str, Any]] = []
        self.decisions: list[dict[str, Any]] = []
        self.poked = asyncio.Event()
        self.desired = scenario.initial_replicas
        self.mode = "stable"
        self.t0 = time.monotonic()
        self.t0_unix = time.time()
        router.on_buffered = self._on_buffered

    def _on_buffered(self) -> None:
        if self.pool.count("ready") + self.pool.count("starting") == 0:
            self.poked.set()

    def _clamp(self, desired: int) -> int:
        return max(self.scenario.min_replicas, min(self.scenario.max_replicas, desired))

    def _sample(self, now: float, span: float) -> None:
        self.pool.reap()
        sample = self.router.sample(now - self.t0, cpu=self.pool.cpu_utilization(span))
        self.controller.observe(sample)
        self.trajectory.append({"t": round(sample.at, 3), "ready": sample.ready, "starting": self.pool.count("starting"),
                                "draining": self.pool.count("draining"), "desired": self.desired,
                                "queued": self.router.queued(), "concurrency": round(sample.concurrency, 4),
                                "rps": round(sample.rps, 3), "cpu": round(sample.cpu, 4), "mode": self.mode})

    async def _decide(self, now: float) -> None:
        decision: Decision = self.controller.decide(now - self.t0, self.router.ready())
        self.desired, self.mode = self._clamp(decision.desired), decision.mode
        self.decisions.append({"t": round(now - self.t0, 3), "desired": self.desired, "mode": decision.mode,
                               "activator_in_path": decision.activator_in_path})
        await self.pool.scale_to(self.desired)

    async def run(self) -> None:
        sample_s, tick_s = self.scenario.sample_s, self.controller.tick_s
        next_sample, next_tick, last_sample = self.t0 + sample_s, self.t0 + tick_s, self.t0
        while True:
            wait = max(0.0, min(next_sample, next_tick) - time.monotonic())
            try:
                await asyncio.wait_for(self.poked.wait(), wait)
            except TimeoutError:
                pass
            now = time.monotonic()
            if self.poked.is_set():  # scale-from-zero: sample and decide now
                self.poked.clear()
                self._sample(now, now - last_sample)
                last_sample = now
                await self._decide(now)
                continue
            if now >= next_sample:
                self._sample(now, now - last_sample)
                last_sample, next_sample = now, next_sample + sample_s
            if now >= next_tick:
                await self._decide(now)
                next_tick += tick_s


async def _wait_ready(pool: ReplicaPool, want: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while pool.count("ready") < want:
        if pool.failed_starts:
            raise RuntimeError(f"replica failed to start: {pool.failed_starts[0]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {pool.count('ready')} of {want} replicas ready after {timeout_s:.0f} s")
        await asyncio.sleep(0.05)


def _controller(spec: StackSpec) -> Controller:
    from medopt.bench.scaling.factory import make_controller

    return make_controller(spec.scenario.controller, scenario=spec.scenario, profile=spec.profile,
                           time_scale=spec.time_scale)


async def serve(spec: StackSpec, limits: CpuLimits | None) -> None:
    """Run until cancelled; SIGTERM cancels this task, so the ``finally`` below stops every replica."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    scenario = spec.scenario
    initial_cold_starts: list[float] = []
    router = Router(container_concurrency=scenario.container_concurrency, queue_limit=scenario.queue_limit,
                    timeout_s=scenario.timeout_s)
    runner, port = await router.start()
    pool = ReplicaPool(router, artifact=spec.artifact, store_root=spec.store_root, spec=scenario.replica,
                       model_name=spec.model_name, limits=limits)
    loop: ControlLoop | None = None
    try:
        await pool.scale_to(scenario.initial_replicas)
        await _wait_ready(pool, scenario.initial_replicas, pool.ready_timeout_s)
        initial_cold_starts = list(pool.cold_starts_s)
        pool.cold_starts_s.clear()
        loop = ControlLoop(scenario, _controller(spec), router, pool)
        print(port, flush=True)
        await loop.run()
    finally:  # the timeline first: the parent SIGKILLs this process 5 s after SIGTERM
        if loop is not None:
            _write(spec, loop, pool, router, initial_cold_starts)
        await pool.close()
        await router.close(runner)


def _write(spec: StackSpec, loop: ControlLoop, pool: ReplicaPool, router: Router, initial: list[float]) -> None:
    events = [{**e, "t": round(e["t"] - loop.t0, 3)} for e in pool.events]
    result = {"t0_unix": loop.t0_unix, "trajectory": loop.trajectory, "decisions": loop.decisions, "events": events,
              "cold_starts_s": pool.cold_starts_s, "initial_cold_starts_s": initial, "rejected": router.rejected,
              "replica_failures": {b.name: b.failed for b in router.backends.values() if b.failed},
              "died": sum(1 for e in pool.events if e["event"] == "died"),
              "replica_cpu_s": pool.cpu_since_ready(),
              "replica_served": {b.name: b.served for b in router.backends.values()},
              "backend_ms": router.backend_ms if spec.record_backend_times else None,
              "cpu_limit_period_us": pool.limits.period_us if pool.limits else None}
    tmp = Path(spec.result_file + ".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(spec.result_file)


def main() -> int:
    spec = StackSpec.model_validate_json(Path(sys.argv[1]).read_text())
    replica = spec.scenario.replica
    limits = CpuLimits(period_us=int(replica.cfs_period_ms * 1000)) if replica.cpu_limit is not None else None
    try:
        asyncio.run(serve(spec, limits))
    except (KeyboardInterrupt, asyncio.CancelledError):
        pass
    finally:
        if limits is not None:
            limits.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
