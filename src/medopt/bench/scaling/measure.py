"""Measure a replica's ``ServiceProfile`` on this machine: service times per batch size, and cold starts.

Why through the real stack: the simulator's service time must be what a request costs end to end when it does not
queue — router hop, KServe decode/encode, the inference under the replica's CPU limit — so it is measured as the
latency of a closed loop that keeps exactly ``batch`` requests outstanding against one replica whose batcher takes
``batch`` rows. Each repeat starts a fresh stack, so each contributes one cold start (one replica starting alone).
"""

from __future__ import annotations

from pathlib import Path

from medopt.bench.arrivals import ArrivalSpec
from medopt.bench.fingerprint import fingerprint
from medopt.bench.scaling.profile import ServiceProfile
from medopt.bench.scaling.realrun import run_real
from medopt.bench.scaling.scenario import ControllerSpec, ReplicaSpec, ScalingScenario


def measure_profile(*, artifact: str, store_root: str | Path, input_shape: list[int], replica: ReplicaSpec,
                    batches: tuple[int, ...] = (1,), seconds: float = 10.0, repeats: int = 3,
                    model: str = "model") -> ServiceProfile:
    """``repeats`` fresh one-replica stacks per batch size, each loaded for ``seconds`` by a closed loop."""
    service: dict[str, list[float]] = {}
    cold: list[float] = []
    for batch in batches:
        spec = replica.model_copy(update={"max_batch_size": batch})
        for rep in range(repeats):
            scenario = ScalingScenario(name=f"profile-b{batch}-{rep}", replica=spec, min_replicas=1, max_replicas=1,
                                       initial_replicas=1, controller=ControllerSpec(kind="fixed"),
                                       arrival=ArrivalSpec(kind="constant", rate=1, duration_s=seconds))
            run = run_real(scenario, artifact=artifact, store_root=store_root, input_shape=input_shape,
                           closed_concurrency=batch)
            ok = [lat for lat, good in zip(run["samples"]["latency_ms"], run["samples"]["ok"], strict=True) if good]
            service.setdefault(str(batch), []).extend(ok[batch:])  # the first batch pays one-off warm-up costs
            cold.extend(run["initial_cold_starts_s"])
    return ServiceProfile(model=model, service_ms=service, cold_start_s=cold, cpu_limit=replica.cpu_limit,
                          threads=replica.threads, fingerprint=fingerprint())
