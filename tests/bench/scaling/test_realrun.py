"""Real replicas (``medopt serve`` processes) behind the router, driven by real controllers on a shortened clock."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from medopt.bench.arrivals import ArrivalSpec, Segment
from medopt.bench.scaling.cgroups import cpu_limits_available
from medopt.bench.scaling.realrun import run_real
from medopt.bench.scaling.scenario import ControllerSpec, ReplicaSpec, ScalingScenario

pytestmark = [pytest.mark.slow, pytest.mark.integration]
needs_limits = pytest.mark.skipif(not cpu_limits_available(), reason="no writable cgroup cpu controller here")


def _replicas(model_name: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if "medopt.serve" in cmd and model_name in cmd:
            found.append(proc)
    return found


def _stacks(model_name: str) -> list[psutil.Process]:
    """The stack processes of runs whose replicas serve ``model_name`` (their spec file names it)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if "medopt.bench.scaling.stack" in cmd:
            with contextlib.suppress(OSError, IndexError):
                if f'"model_name":"{model_name}"' in Path(cmd[-1]).read_text():
                    found.append(proc)
    return found


def _loadgen_running() -> bool:
    return any("medopt.bench.loadgen" in (p.info["cmdline"] or []) for p in psutil.process_iter(["cmdline"]))


@needs_limits
def test_kpa_scales_out_under_a_burst_and_back_in_after_it(tiny_model: Any) -> None:
    scenario = ScalingScenario(
        name="kpa-burst", sample_s=0.1, slo_ms=2000, min_replicas=1, max_replicas=3, initial_replicas=1,
        replica=ReplicaSpec(cpu_limit=0.1), controller=ControllerSpec(kind="kpa", settings={"target": 1}), timeout_s=60,
        arrival=ArrivalSpec(kind="step", seed=1, segments=[Segment(seconds=3, rate=3), Segment(seconds=8, rate=60),
                                                           Segment(seconds=20, rate=2)]))
    result = run_real(scenario, artifact=tiny_model.key, store_root=tiny_model.store,
                      input_shape=tiny_model.input_shape, time_scale=0.1)
    assert result["errors"] == {}
    desired = [p["desired"] for p in result["trajectory"]]
    concurrency = max(p["concurrency"] for p in result["trajectory"])
    assert max(desired) >= 2, f"the burst (60 req/s against ~27 per replica) must scale out; max concurrency {concurrency}"
    assert any(d["mode"] == "panic" for d in result["decisions"])
    # a replica asked for during the burst starts (how soon it is ready depends on the machine's other load)
    assert any(p["starting"] for p in result["trajectory"]) or result["max_ready"] >= 2
    if result["max_ready"] >= 2:
        assert result["cold_starts"] >= 1 and result["cold_start_s"]["p50_ms"] > 100
    assert desired[-1] < max(desired), "20 s of quiet (panic ends, then the stable window empties) scales in"


@needs_limits
def test_a_killed_replica_is_replaced_and_the_errors_it_caused_are_reported(tiny_model: Any) -> None:
    name = "killtest"
    scenario = ScalingScenario(
        name="kill", slo_ms=2000, min_replicas=2, max_replicas=2, initial_replicas=2, replica=ReplicaSpec(cpu_limit=0.1),
        controller=ControllerSpec(kind="fixed", settings={"replicas": 2}),
        arrival=ArrivalSpec(kind="poisson", rate=45, duration_s=16, seed=2))
    killed: list[int] = []

    def killer() -> None:  # the load generator starts once both replicas are ready; kill one 4 s into the load
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not _loadgen_running():
            time.sleep(0.2)
        time.sleep(4)
        victims = _replicas(name)
        if victims:
            killed.append(victims[0].pid)
            victims[0].kill()

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    result = run_real(scenario, artifact=tiny_model.key, store_root=tiny_model.store,
                      input_shape=tiny_model.input_shape, model_name=name)
    thread.join(5)
    assert killed, "the replicas never appeared"
    assert result["died"] == 1
    events = [e["event"] for e in result["events"]]
    assert events.index("died") < len(events) - 1 and "ready" in events[events.index("died"):]
    # only requests in flight at the killed replica fail (502, none if it was idle at that instant); the rest are
    # served by the other replica and the replacement, and every request is accounted for
    assert set(result["errors"]) <= {"http-502"}, result["errors"]
    assert sum(result["errors"].values()) <= 40
    assert result["ok"] + sum(result["errors"].values()) == result["requests"]  # (an unfinished one is an error too)
    assert result["trajectory"][-1]["ready"] == 2
    assert not _replicas(name)


def test_first_request_after_scale_from_zero_succeeds_and_waits_for_the_cold_start(tiny_model: Any) -> None:
    scenario = ScalingScenario(
        name="from-zero", sample_s=0.1, slo_ms=60_000, min_replicas=0, max_replicas=1, initial_replicas=0,
        timeout_s=60, controller=ControllerSpec(kind="kpa", settings={"target": 1}),
        arrival=ArrivalSpec(kind="trace", trace=[0.5, 1.0, 12.0]))
    result = run_real(scenario, artifact=tiny_model.key, store_root=tiny_model.store,
                      input_shape=tiny_model.input_shape, time_scale=0.1,
                      model_name="fromzero")
    assert result["errors"] == {} and result["ok"] == 3
    first = result["samples"]["latency_ms"][0]
    cold_ms = result["cold_start_s"]["p50_ms"]
    assert cold_ms * 0.8 <= first <= cold_ms + 3000, (first, cold_ms)
    assert result["samples"]["latency_ms"][2] < first / 5, "once warm, requests are fast"
    assert result["trajectory"][0]["ready"] == 0


def test_ctrl_c_ends_every_replica_process(tiny_model: Any) -> None:
    name = "ctrlc"
    code = (  # Ctrl+C as at a terminal: a shell's background job (CI, nohup) inherits SIGINT ignored
        "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "from medopt.bench.arrivals import ArrivalSpec\n"
        "from medopt.bench.scaling.realrun import run_real\n"
        "from medopt.bench.scaling.scenario import ControllerSpec, ScalingScenario\n"
        "sc = ScalingScenario(min_replicas=2, max_replicas=2, initial_replicas=2,\n"
        "    controller=ControllerSpec(kind='fixed'), arrival=ArrivalSpec(rate=5, duration_s=120))\n"
        f"run_real(sc, artifact={tiny_model.key!r}, store_root={str(tiny_model.store)!r},"
        f" input_shape={tiny_model.input_shape},"
        f" model_name={name!r})\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(_replicas(name)) < 2:
            time.sleep(0.2)
        assert len(_replicas(name)) == 2
        time.sleep(2)
        os.kill(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 15
        while _replicas(name) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _replicas(name)
    finally:
        if proc.poll() is None:
            proc.kill()
        for leftover in _stacks(name) + _replicas(name):  # never leave a failed run's processes to the next test
            with contextlib.suppress(psutil.Error):
                leftover.kill()
