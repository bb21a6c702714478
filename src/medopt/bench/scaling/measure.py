"""Measure a replica's ``ServiceProfile`` on this machine: service times per batch size, and cold starts.

Why through the real stack: the simulator's service time must be what a request occupies a replica for — KServe
decode/encode, the inference, the loopback hop from the router — so it is the router's own dispatch-to-response
time, taken under the load the runs see (open loop for batch 1: idle wake-ups cost real time), plus the client-side
overhead measured beside it. Each repeat starts a fresh stack, so each contributes one cold start (one replica starting alone).
The replica's own CPU per request is measured too (process CPU time over requests served): only that part of a
service time is slowed by a CPU limit, the rest (loopback, the router hop) is not.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medopt.bench.arrivals import ArrivalSpec
from medopt.bench.fingerprint import fingerprint
from medopt.bench.scaling.profile import ServiceProfile
from medopt.bench.scaling.realrun import run_real
from medopt.bench.scaling.scenario import ControllerSpec, ReplicaSpec, ScalingScenario


def _arrival(batch: int, rate_rps: float | None, seconds: float, seed: int) -> tuple[ArrivalSpec, int | None]:
    if batch == 1 and rate_rps:
        return ArrivalSpec(kind="poisson", rate=rate_rps, duration_s=seconds, seed=seed), None
    return ArrivalSpec(kind="constant", rate=1, duration_s=seconds), batch


def measure_profile(*, artifact: str, store_root: str | Path, input_shape: list[int], replica: ReplicaSpec,
                    batches: tuple[int, ...] = (1,), seconds: float = 10.0, repeats: int = 3,
                    rate_rps: float | None = None, model: str = "model") -> ServiceProfile:
    """``repeats`` fresh one-replica stacks per batch size, each loaded for ``seconds``.

    Batch 1 is loaded open loop at ``rate_rps`` (Poisson) when given — requests then find the replica idle, as
    most do in a real run, wake-ups included — else, like larger batches, by a closed loop of ``batch``. The
    service time is the router's dispatch-to-response time (the replica slot's busy time); ``overhead_ms`` is what
    the client sees on top of it at that load (median latency minus median service time).
    """
    service: dict[str, list[float]] = {}
    cold: list[float] = []
    cpu_s, served, overhead = 0.0, 0, []
    for batch in batches:
        spec = replica.model_copy(update={"max_batch_size": batch})
        for rep in range(repeats):
            arrival, closed = _arrival(batch, rate_rps, seconds, seed=100 + rep)
            scenario = ScalingScenario(name=f"profile-b{batch}-{rep}", replica=spec, min_replicas=1, max_replicas=1,
                                       initial_replicas=1, controller=ControllerSpec(kind="fixed"), arrival=arrival,
                                       container_concurrency=batch, queue_limit=10_000)
            run = run_real(scenario, artifact=artifact, store_root=store_root, input_shape=input_shape,
                           closed_concurrency=closed, record_backend_times=True)
            backend = run["backend_ms"][batch:]  # the first batch pays one-off warm-up costs
            service.setdefault(str(batch), []).extend(backend)
            cold.extend(run["initial_cold_starts_s"])
            if batch == 1:
                cpu_s += sum(run["replica_cpu_s"].values())
                served += sum(run["replica_served"].values())
                ok = [x for x, good in zip(run["samples"]["latency_ms"], run["samples"]["ok"], strict=True) if good]
                overhead.append(max(0.0, float(np.median(ok)) - float(np.median(backend))))
    cpu_ms = 1000.0 * cpu_s / served if served else None
    return ServiceProfile(model=model, service_ms=service, cold_start_s=cold, cpu_limit=replica.cpu_limit,
                          threads=replica.threads, cpu_ms=cpu_ms, overhead_ms=float(np.median(overhead)),
                          fingerprint=fingerprint())
