"""The autoscaling simulator against queueing theory and the real router/replica rules it mirrors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medopt.bench.arrivals import ArrivalSpec
from medopt.bench.links.profiles import LinkProfile
from medopt.bench.scaling.controller import Decision, Sample
from medopt.bench.scaling.netmodel import transfer_ms
from medopt.bench.scaling.profile import ServiceProfile
from medopt.bench.scaling.scenario import ControllerSpec, ReplicaSpec, ScalingScenario
from medopt.bench.scaling.sim import ERROR_REJECTED, ERROR_TIMEOUT, SimulationError, fifo, simulate, simulate_edge


class Scripted:
    """A test controller: ``plan`` maps a start time to the count wanted from then on."""

    name = "scripted"

    def __init__(self, plan: dict[float, int], tick_s: float = 1.0) -> None:
        self.plan, self.tick_s = sorted(plan.items()), tick_s
        self.samples: list[Sample] = []

    def observe(self, sample: Sample) -> None:
        self.samples.append(sample)

    def decide(self, now: float, ready: int) -> Decision:
        desired = [n for t, n in self.plan if t <= now + 1e-9][-1]
        return Decision(at=now, desired=desired, mode="scripted")


def _profile(samples_ms: list[float] | np.ndarray, cold: list[float] | None = None,
             batches: dict[str, list[float]] | None = None) -> ServiceProfile:
    service = {"1": [float(x) for x in samples_ms], **(batches or {})}
    return ServiceProfile(service_ms=service, cold_start_s=cold or [1.0])


def _scenario(rate: float, duration: float, replicas: int = 1, *, kind: str = "poisson",
              **kw: object) -> ScalingScenario:
    fields: dict = {"min_replicas": replicas, "max_replicas": max(replicas, 1), "initial_replicas": replicas,
                    "controller": ControllerSpec(kind="fixed", settings={"replicas": replicas})}
    fields.update(kw)
    return ScalingScenario(arrival=ArrivalSpec(kind=kind, rate=rate, duration_s=duration, seed=1), **fields)


def _latencies(result: dict) -> np.ndarray:
    lat = np.asarray(result["samples"]["latency_ms"])
    return lat[np.asarray(result["samples"]["ok"])]


def test_md1_mean_latency_matches_pollaczek_khinchine() -> None:
    service_ms, rate = 1.0, 500.0  # rho = 0.5
    result = simulate(_scenario(rate, 200.0), _profile([service_ms]), seed=0)
    rho = rate * service_ms / 1e3
    want = service_ms + rho * service_ms / (2 * (1 - rho))  # W = D + Wq, Wq = rho D / (2 (1 - rho))
    assert result["ok"] == result["requests"] == 100_000
    assert _latencies(result).mean() == pytest.approx(want, rel=0.03)


def test_mm1_tail_matches_the_exponential_sojourn_time() -> None:
    samples = np.random.default_rng(0).exponential(1.0, 20_000)
    rate, mu = 500.0, 1e3 / samples.mean()
    result = simulate(_scenario(rate, 200.0), _profile(samples), seed=0)
    lat = _latencies(result)
    assert lat.mean() == pytest.approx(1e3 / (mu - rate), rel=0.06)
    assert np.quantile(lat, 0.99) == pytest.approx(1e3 * math.log(100) / (mu - rate), rel=0.10)


def test_edge_fifo_is_lindleys_recursion() -> None:
    rng = np.random.default_rng(4)
    arrive, service = np.sort(rng.uniform(0, 10, 500)), rng.exponential(0.03, 500)
    done, free = [], 0.0
    for a, s in zip(arrive, service):
        free = max(a, free) + s
        done.append(free)
    assert fifo(arrive, service) == pytest.approx(np.asarray(done), abs=1e-12)


def test_edge_only_md1_matches_pollaczek_khinchine() -> None:
    result = simulate_edge(_scenario(50.0, 400.0), [10.0], seed=0)  # rho = 0.5 at 10 ms
    assert _latencies(result).mean() == pytest.approx(10.0 + 0.5 * 10.0 / (2 * 0.5), rel=0.04)
    assert result["replica_seconds"] == 0 and result["edge_seconds"] == 400.0


def test_queue_limit_answers_503_under_overload_and_the_run_ends() -> None:
    sc = _scenario(1000.0, 5.0, container_concurrency=1, queue_limit=10, timeout_s=2.0)
    result = simulate(sc, _profile([10.0]), seed=0)
    served = result["ok"]
    assert result["errors"].get(ERROR_REJECTED, 0) > 0.8 * result["requests"]
    assert served + sum(result["errors"].values()) == result["requests"]
    assert 450 <= served <= 520  # one replica, 100 req/s, for 5 s (the last ones drain after the end)
    assert max(p["queued"] for p in result["trajectory"]) <= 10
    assert _latencies(result).max() <= 2000.0


def test_no_replica_ever_means_every_request_times_out_without_hanging() -> None:
    sc = _scenario(20.0, 3.0, replicas=0, timeout_s=0.5)
    result = simulate(sc, _profile([5.0]), seed=0)
    assert result["ok"] == 0
    assert result["errors"] == {ERROR_TIMEOUT: result["requests"]}
    assert np.allclose(result["samples"]["latency_ms"], 500.0, atol=1e-3)


def test_least_outstanding_spreads_load_and_breaks_ties_by_the_oldest_replica() -> None:
    busy = simulate(_scenario(1400.0, 20.0, replicas=4), _profile([2.0]), seed=0)  # rho 0.7 per replica
    served = np.asarray(busy["replica_served"])
    assert served.sum() == busy["requests"]
    assert served.min() > 0.15 * served.sum()  # every replica takes a real share ...
    assert list(served) == sorted(served, reverse=True)  # ... the oldest the most (ties go to it)
    one = simulate(_scenario(350.0, 80.0), _profile([2.0]), seed=0)  # the same per-replica load on its own
    assert np.quantile(_latencies(busy), 0.99) < 0.5 * np.quantile(_latencies(one), 0.99)
    idle = simulate(_scenario(2.0, 20.0, replicas=3), _profile([1.0]), seed=0)  # never two at once
    assert idle["replica_served"] == [idle["requests"], 0, 0]


def test_container_concurrency_holds_requests_at_the_router() -> None:
    sc = _scenario(400.0, 10.0, replicas=2, container_concurrency=1)
    result = simulate(sc, _profile([4.0]), seed=0)  # rho 0.8: queues build at the router, not at replicas
    assert result["ok"] == result["requests"]
    assert max(p["queued"] for p in result["trajectory"]) >= 1


def test_fixed_controller_replica_seconds_is_count_times_duration() -> None:
    result = simulate(_scenario(50.0, 30.0, replicas=3), _profile([2.0]), seed=0)
    assert result["replica_seconds"] == pytest.approx(90.0)
    assert result["replica_seconds_held"] == pytest.approx(90.0)
    ts = [p["t"] for p in result["trajectory"]]
    assert ts == pytest.approx([float(t) for t in range(31)])
    assert set(result["trajectory"][1]) >= {"t", "ready", "starting", "draining", "desired", "queued",
                                            "concurrency", "mode"}
    assert result["source"] == "sim"


def test_cold_start_delays_the_first_requests_after_scale_from_zero() -> None:
    sc = _scenario(5.0, 20.0, replicas=0, max_replicas=1, min_replicas=0,
                   controller=ControllerSpec(kind="fixed", settings={"replicas": 1}))
    result = simulate(sc, _profile([10.0], cold=[3.0]), seed=0)
    sched = np.asarray(result["samples"]["scheduled_s"])
    lat = np.asarray(result["samples"]["latency_ms"])
    first = sched[0]
    ready_at = first + 3.0  # the buffered first request pokes the controller: the replica starts at once
    early = sched < ready_at - 0.5
    assert lat[0] == pytest.approx(3000.0 + 10.0, abs=1.0)
    assert np.all(lat[early] >= (ready_at - sched[early]) * 1e3)
    assert np.median(lat[sched > ready_at + 2]) < 25.0
    assert result["cold_starts"] == 1
    poke = result["trajectory"][1]  # sampled at the first arrival, just before the decision it triggers
    assert poke["t"] == pytest.approx(first) and poke["queued"] == 1
    assert next(p for p in result["trajectory"] if p["t"] == 1.0)["starting"] == 1


def test_same_seed_same_result_other_seed_other_result() -> None:
    samples = np.random.default_rng(0).gamma(2.0, 2.0, 1000)
    sc = _scenario(150.0, 20.0, replicas=1)
    a, b = simulate(sc, _profile(samples), seed=3), simulate(sc, _profile(samples), seed=3)
    c = simulate(sc, _profile(samples), seed=4)
    assert a["samples"] == b["samples"] and a["trajectory"] == b["trajectory"]
    assert a["samples"]["scheduled_s"] == c["samples"]["scheduled_s"]  # the same arrivals (their own seed)
    assert a["samples"]["latency_ms"] != c["samples"]["latency_ms"]


def test_timeouts_free_the_routers_slot_while_the_replica_works_them_off() -> None:
    arrival = ArrivalSpec(kind="trace", trace=[0.0, 0.1, 0.2], duration_s=1.0)
    sc = ScalingScenario(arrival=arrival, controller=ControllerSpec(kind="fixed", settings={"replicas": 1}),
                         min_replicas=1, max_replicas=1, initial_replicas=1, container_concurrency=1, timeout_s=1.5)
    result = simulate(sc, _profile([1000.0]), seed=0)
    assert result["samples"]["ok"] == [True, False, False]
    assert result["errors"] == {ERROR_TIMEOUT: 2}
    assert result["samples"]["latency_ms"] == pytest.approx([1000.0, 1500.0, 1500.0])


def test_scale_down_drains_the_newest_and_counts_draining_replica_time() -> None:
    ctl = Scripted({0.0: 4, 5.0: 1})
    sc = _scenario(40.0, 15.0, replicas=4, min_replicas=1)
    result = simulate(sc, _profile([80.0]), seed=0, controller=ctl)  # rho 0.8 on 4, overloaded on 1
    after = [p for p in result["trajectory"] if 5.0 < p["t"] < 6.0 or p["t"] == 6.0]
    assert after and after[0]["ready"] == 1
    assert result["replica_served"][0] > max(result["replica_served"][1:])
    held = result["replica_seconds_held"]  # 4 x 5 s + 1 x 10 s, plus the drained ones finishing their requests
    assert 30.0 < held < 30.0 + 3 * 0.5
    assert len(ctl.samples) == 15 and all(s.ready in (1, 4) for s in ctl.samples)


def test_samples_report_concurrency_rps_and_cpu() -> None:
    ctl = Scripted({0.0: 2})
    result = simulate(_scenario(100.0, 20.0, replicas=2), _profile([5.0]), seed=0, controller=ctl)
    mid = ctl.samples[5:]
    assert np.mean([s.rps for s in mid]) == pytest.approx(100.0, rel=0.1)
    assert np.mean([s.concurrency for s in mid]) == pytest.approx(0.5, rel=0.15)  # Little: 100/s x 5 ms
    assert np.mean([s.cpu for s in mid]) == pytest.approx(0.25, rel=0.15)  # 0.5 busy over 2 replicas
    assert result["ok"] == result["requests"]
    wide = Scripted({0.0: 2})  # a 2-core limit: one busy worker thread uses half of it
    simulate(_scenario(100.0, 20.0, replicas=2, replica=ReplicaSpec(cpu_limit=2.0)), _profile([5.0]), controller=wide)
    assert np.mean([s.cpu for s in wide.samples[5:]]) == pytest.approx(0.125, rel=0.15)


def test_batching_runs_queued_requests_together() -> None:
    prof = _profile([10.0], batches={"4": [12.0]})
    sc = _scenario(250.0, 20.0, replica=ReplicaSpec(max_batch_size=4))
    alone = simulate(_scenario(250.0, 20.0), prof, seed=0)  # 10 ms each: rho 2.5, overloaded
    together = simulate(sc, prof, seed=0)
    assert together["ok"] == together["requests"]
    assert alone["errors"] and np.median(_latencies(together)) < 40.0


def test_link_and_edge_stage_add_exactly_their_time_on_an_idle_system() -> None:
    link = LinkProfile(name="l", rtt_ms=10.0, rate_mbit=100.0)
    sc = _scenario(1.0, 20.0)
    cloud = simulate(sc, _profile([5.0]), seed=0, link=link, link_bytes=(12_500, 1_250))
    assert _latencies(cloud) == pytest.approx(5.0 + transfer_ms(link, 12_500, 1_250), abs=1e-3)
    split = simulate(sc, _profile([5.0]), seed=0, link=link, link_bytes=(12_500, 1_250), edge_ms=[3.0])
    assert _latencies(split) == pytest.approx(8.0 + transfer_ms(link, 12_500, 1_250), abs=1e-3)
    assert cloud["egress_bytes"] == 1_250 * cloud["ok"]


def test_kpa_from_the_scenario_scales_up_under_a_step() -> None:
    arrival = ArrivalSpec(kind="step", segments=[{"seconds": 20, "rate": 20}, {"seconds": 40, "rate": 200}])
    sc = ScalingScenario(arrival=arrival, controller=ControllerSpec(kind="kpa", settings={"target": 1.0}),
                         container_concurrency=1, min_replicas=1, max_replicas=10, initial_replicas=1)
    result = simulate(sc, _profile([10.0], cold=[2.0]), seed=0)
    assert result["max_ready"] >= 3 and result["cold_starts"] >= 2
    assert result["slo_attainment"] > 0.8


def test_a_link_without_byte_counts_is_refused() -> None:
    with pytest.raises(SimulationError, match="link_bytes"):
        simulate(_scenario(1.0, 2.0), _profile([1.0]), link=LinkProfile(name="l", rtt_ms=1, rate_mbit=1))


@pytest.mark.slow
def test_thousands_per_second_simulate_fast() -> None:
    import time

    started = time.perf_counter()
    result = simulate(_scenario(2000.0, 60.0, replicas=8), _profile(np.random.default_rng(0).gamma(4, 0.75, 500)))
    elapsed = time.perf_counter() - started
    assert result["requests"] == 120_000
    assert elapsed < 6.0, elapsed  # about 1 s here: 100 such points stay well under 10 minutes


@pytest.mark.parametrize("cores, wanted_at, cold_ms", [(None, 5, 1000.0), (2.0, 5, 2000.0), (4.0, 5, 1000.0),
                                                       (2.0, 3, 1000.0)])
def test_concurrent_cold_starts_share_the_startup_cores(cores: float | None, wanted_at: int, cold_ms: float) -> None:
    # one ready replica; at t=2 the controller asks for `wanted_at` in all; each cold start is 1 s on its own core
    sc = _scenario(1.0, 10.0, replicas=1, max_replicas=5)
    result = simulate(sc, _profile([1.0], cold=[1.0]), seed=0, controller=Scripted({0.0: 1, 2.0: wanted_at}),
                      startup_cores=cores)
    assert result["cold_starts"] == wanted_at - 1
    assert result["cold_start_s"]["p50_ms"] == pytest.approx(cold_ms, abs=1.0)
    ready_at = 2.0 + cold_ms / 1000
    traj = result["trajectory"]
    assert max(p["ready"] for p in traj if p["t"] < ready_at - 0.01) == 1
    assert min(p["ready"] for p in traj if p["t"] >= ready_at + 0.01) == wanted_at


def test_startup_cores_must_be_positive() -> None:
    with pytest.raises(SimulationError, match="startup_cores"):
        simulate(_scenario(1.0, 1.0), _profile([1.0]), startup_cores=0)
