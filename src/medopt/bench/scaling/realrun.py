"""A real autoscaling run: the stack process (router, replicas, controller) under the open-loop load generator.

Why two processes besides the replicas: the load generator must not share an interpreter with the router it
measures (part 1's rule), and the stack's timeline is lined up with the generator's samples by their wall-clock
starts. Whatever happens — an error, Ctrl+C, SIGTERM — the stack's whole process group (router and every replica)
is stopped before this returns.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path
from typing import Any

from medopt.bench.links.launch import run_proxy
from medopt.bench.links.profiles import LinkProfile
from medopt.bench.loadgen import LoadSpec, Target, run_load
from medopt.bench.processes import Announcing, terminate_on_sigterm
from medopt.bench.scaling.profile import ServiceProfile
from medopt.bench.scaling.scenario import ScalingScenario, summarize
from medopt.bench.scaling.stack import StackSpec


def _load_spec(scenario: ScalingScenario, url: str, model_name: str, input_shape: list[int], closed: int | None
               ) -> LoadSpec:
    target = Target(url=url, model=model_name, protocol="v2-binary", input_shape=input_shape,
                    timeout_s=scenario.timeout_s + 5, max_connections=1024)
    mode = {"mode": "closed", "concurrency": closed} if closed else {}
    return LoadSpec(target=target, arrival=scenario.arrival, warmup_requests=0, drain_s=scenario.timeout_s + 2,
                    max_outstanding=100_000, **mode)


def _shift(points: list[dict[str, Any]], by: float) -> list[dict[str, Any]]:
    return [{**p, "t": round(p["t"] + by, 3)} for p in points]


def run_real(scenario: ScalingScenario, *, artifact: str, store_root: str | Path, input_shape: list[int],
             model_name: str = "medopt", profile: ServiceProfile | None = None, time_scale: float = 1.0,
             closed_concurrency: int | None = None, record_backend_times: bool = False,
             link: LinkProfile | None = None, start_timeout_s: float = 240.0) -> dict[str, Any]:
    """Run ``scenario`` for real and return ``summarize``'s figures (source "real") plus the stack's timeline.

    Trajectory times are seconds from the load generator's start, like the request samples. ``closed_concurrency``
    replaces the open-loop arrivals by that many requests kept outstanding (for measuring service times). ``link``
    puts part 1's userspace link proxy between the load generator (the edge site) and the router (the cloud).
    """
    with tempfile.TemporaryDirectory(prefix="medopt-scale-") as tmp, terminate_on_sigterm():
        result_file = Path(tmp) / "stack.json"
        spec = StackSpec(scenario=scenario, artifact=artifact, store_root=str(Path(store_root).resolve()),
                         result_file=str(result_file), model_name=model_name, profile=profile, time_scale=time_scale,
                         record_backend_times=record_backend_times)
        spec_file = Path(tmp) / "spec.json"
        spec_file.write_text(spec.model_dump_json())
        stack = Announcing(["medopt.bench.scaling.stack", str(spec_file)], "autoscaling stack")
        try:
            address = f"127.0.0.1:{stack.wait_port(start_timeout_s)}"
            with contextlib.ExitStack() as links:
                if link is not None:
                    address = links.enter_context(run_proxy(link, address))
                load_spec = _load_spec(scenario, f"http://{address}", model_name, input_shape, closed_concurrency)
                load = run_load(load_spec)
        finally:
            stack.stop()
        timeline = json.loads(result_file.read_text())
    offset = timeline["t0_unix"] - load["t0_unix"]
    samples = load["samples"]
    out = summarize(scenario, scheduled_s=samples["scheduled_s"], latency_ms=samples["latency_ms"],
                    ok=samples["ok"], errors=load["errors"], trajectory=_shift(timeline["trajectory"], offset),
                    cold_starts_s=timeline["cold_starts_s"], source="real")
    out.update(events=_shift(timeline["events"], offset), decisions=_shift(timeline["decisions"], offset),
               initial_cold_starts_s=timeline["initial_cold_starts_s"], died=timeline["died"],
               rejected=timeline["rejected"], cpu_limit_period_us=timeline["cpu_limit_period_us"],
               replica_cpu_s=timeline["replica_cpu_s"], replica_served=timeline["replica_served"],
               backend_ms=timeline["backend_ms"],
               achieved_rps=load["achieved_rps"], offered_rps=load["offered_rps"])
    return out
