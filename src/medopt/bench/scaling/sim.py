"""Discrete-event simulation (simpy) of one autoscaling scenario: router, replicas, controller loop, optional link.

Why: the regime map and the planner need hundreds of scenario runs, far more than real replicas can do; the
simulator replays the real run's rules (``router.Router``, ``replicas.ReplicaPool``, ``stack.ControlLoop``) with
measured service times (``ServiceProfile``), so one scenario gives comparable ``summarize`` figures either way:

* router: a request goes to the ready replica with the fewest outstanding (ties: the oldest) below
  ``container_concurrency``; else it waits FIFO in the router; with ``queue_limit`` waiting it is refused
  ("http-503"); ``timeout_s`` after reaching the router it is answered "http-504" (a waiting one leaves the queue;
  one at a replica frees its slot and the replica still works it off, as a real server does for a dropped
  connection); the load generator itself gives up ``CLIENT_GRACE_S`` later ("timeout", only over a slow link);
* replica: one worker takes what is queued, up to ``max_batch_size``, as one batch; the batch's time is a resample of
  ``profile.samples_ms(batch)``; a new replica is ready after a resampled ``cold_start_s`` (with ``startup_cores``,
  replicas starting at the same time share that many cores, as on one machine: each progresses at
  min(1, startup_cores / starting), so five starts on two cores take 2.5x as long; None, as on a cluster where each
  pod starts on its own node's cores: every start takes its own sample);
* control: every ``sample_s`` a ``Sample`` (time-averaged requests in the revision, arrivals/s, ready, cpu), every
  ``tick_s`` a decision clamped to [min, max]; a request buffered while nothing is ready or starting triggers a
  sample and a decision at once (the activator's poke); scale-down removes starting replicas first, then drains the
  newest ready ones (no new requests; stopped when their outstanding reach 0).

Placements: ``link`` adds the proxy's network model (``netmodel``) per request, before the router (upload of
``link_bytes[0]``) and after it (download of ``link_bytes[1]``); ``edge_ms`` first runs an edge FIFO stage (split
inference). ``simulate_edge`` is the edge-only placement. Speed comes from arrays for everything that does not feed
back (arrivals, edge stage, link) and plain callbacks instead of one simpy process per request.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np
import simpy

from medopt.bench.arrivals import schedule, schedule_duration
from medopt.bench.links.profiles import LinkProfile
from medopt.bench.scaling.buckets import ScalingError
from medopt.bench.scaling.controller import Controller, Sample
from medopt.bench.scaling.factory import make_controller
from medopt.bench.scaling.netmodel import link_model
from medopt.bench.scaling.profile import ServiceProfile
from medopt.bench.scaling.scenario import ScalingScenario, summarize

# The error names the real run records (``protocols.http_sender`` over ``router.Router``): the router's 503 (buffer
# full) and 504 (its timeout_s passed), and the load generator's own timeout, which ``realrun`` sets 5 s later.
ERROR_REJECTED = "http-503"
ERROR_TIMEOUT = "http-504"
ERROR_CLIENT_TIMEOUT = "timeout"
CLIENT_GRACE_S = 5.0
_PENDING, _OK, _REJECTED, _TIMEOUT, _CLIENT_TIMEOUT = 0, 1, 2, 3, 4
_BLOCK = 4096  # service-time draws made at once


class SimulationError(ScalingError):
    """A simulation input that cannot be run (empty samples, a batch profile missing, a bad link byte count)."""


class _Draws:
    """Resamples of a sample array, drawn in blocks (a numpy call per request would dominate the run time)."""

    def __init__(self, samples: np.ndarray, rng: np.random.Generator, scale: float = 1.0) -> None:
        if samples.size == 0:
            raise SimulationError("cannot resample an empty sample list")
        self.samples, self.rng, self.scale = np.asarray(samples, dtype=float) * scale, rng, scale
        self._buf: list[float] = []

    def next(self) -> float:
        if not self._buf:
            self._buf = self.samples[self.rng.integers(0, self.samples.size, _BLOCK)].tolist()
            self._buf.reverse()
        return self._buf.pop()

    def many(self, n: int) -> np.ndarray:
        return self.samples[self.rng.integers(0, self.samples.size, n)]


class _Replica:
    __slots__ = ("idx", "state", "started", "stopped", "cold_s", "outstanding", "queue", "busy", "busy_since",
                 "busy_acc", "served", "cfs_period", "cfs_used", "left", "since", "rate", "token")

    def __init__(self, idx: int, state: str, started: float, cold_s: float) -> None:
        self.idx, self.state, self.started, self.cold_s = idx, state, started, cold_s
        self.stopped: float | None = None
        self.outstanding = 0  # the router's count: sent, not yet answered (or timed out)
        self.queue: deque[int] = deque()  # requests at the replica not yet in a batch
        self.busy = False
        self.busy_since = 0.0
        self.busy_acc = 0.0  # busy seconds since the last sample
        self.served = 0  # requests answered in time
        self.cfs_period = -1  # index of the CFS period the quota use below belongs to
        self.cfs_used = 0.0
        self.left, self.since, self.rate, self.token = cold_s, started, 1.0, 0  # a shared-core cold start's progress


def _throttled(r: _Replica, now: float, demand: float, quota: float, period: float) -> float:
    """Wall time to get ``demand`` CPU-seconds under a CFS quota of ``quota`` per ``period`` (periods aligned at
    multiples of ``period``): run while this period's quota lasts, then wait for the next period."""
    t, left = now, demand
    while left > 1e-12:
        k = math.floor(t / period + 1e-9)  # at a boundary, the new period (float error must not stall the loop)
        if k != r.cfs_period:
            r.cfs_period, r.cfs_used = k, 0.0
        avail = quota - r.cfs_used
        if avail <= 1e-12:
            t = (k + 1) * period
            continue
        run = min(left, avail, (k + 1) * period - t)
        t += run
        left -= run
        r.cfs_used += run
    return t - now


class _Cluster:
    """Router + replicas + control loop over one sorted array of router arrival times."""

    def __init__(self, scenario: ScalingScenario, profile: ServiceProfile, controller: Controller,
                 arrive: np.ndarray, duration: float, rng: np.random.Generator,
                 startup_cores: float | None = None) -> None:
        self.env = simpy.Environment()
        self.startup_cores = startup_cores
        self.sc, self.profile, self.ctl = scenario, profile, controller
        self.arrive = arrive.tolist()
        self.n = len(self.arrive)
        self.duration = duration
        self.status = [_PENDING] * self.n
        self.done = [math.nan] * self.n
        self.loc: list[_Replica | None] = [None] * self.n  # the replica a request was sent to
        self.cc = scenario.container_concurrency
        self.batch = scenario.replica.max_batch_size
        self.timeout = scenario.timeout_s
        svc_rng, cold_rng = rng.spawn(2)
        self.service = {b: _Draws(profile.samples_ms(b), svc_rng, 1e-3) for b in range(1, self.batch + 1)}
        self.cold = _Draws(np.asarray(profile.cold_start_s, dtype=float), cold_rng)
        limit, threads = scenario.replica.cpu_limit, scenario.replica.threads
        if limit is not None and profile.cpu_limit is not None and abs(profile.cpu_limit - limit) > 1e-9:
            raise SimulationError(f"the profile was measured under cpu_limit {profile.cpu_limit}, the scenario "
                                  f"asks for {limit}: measure without a limit (the CFS quota is then simulated)")
        # a limit the profile was not measured under is applied as the kernel does: a CFS quota per period
        self.period = scenario.replica.cfs_period_ms * 1e-3
        throttled = limit is not None and profile.cpu_limit is None and limit < threads
        self.quota = limit * self.period if throttled else None
        self.cpu_share = profile.cpu_share()
        self.core_use = float(min(threads, limit) if limit else threads)  # cores a busy worker uses
        self.replicas: list[_Replica] = []
        self.serving: list[_Replica] = []  # ready, not draining, by index
        self.n_starting = 0
        self.rq: deque[int] = deque()  # router queue (timed-out entries are skipped lazily)
        self.queued = 0  # live entries in rq
        self.in_rev = 0  # requests in the revision (router meter)
        self.area = 0.0
        self.last = 0.0
        self.arrivals = 0
        self.last_sample = 0.0
        self.desired = scenario.initial_replicas
        self.mode = "stable"
        self.trajectory: list[dict[str, Any]] = []
        self.cold_starts: list[float] = []
        for _ in range(scenario.initial_replicas):  # the real run waits for these before the load starts
            r = _Replica(len(self.replicas), "ready", 0.0, 0.0)
            self.replicas.append(r)
            self.serving.append(r)

    # -- meter ------------------------------------------------------------------------------------------------
    def _change(self, delta: int) -> None:
        now = self.env.now
        self.area += self.in_rev * (now - self.last)
        self.last = now
        self.in_rev += delta

    # -- routing ----------------------------------------------------------------------------------------------
    def _pick(self) -> _Replica | None:
        best = None
        cc = self.cc
        for r in self.serving:
            if cc and r.outstanding >= cc:
                continue
            if best is None or r.outstanding < best.outstanding:
                best = r
        return best

    def _send(self, r: _Replica, i: int) -> None:
        self.loc[i] = r
        r.outstanding += 1
        r.queue.append(i)
        if not r.busy:
            self._start_batch(r)

    def _dispatch(self) -> None:
        while self.queued:
            r = self._pick()
            if r is None:
                return
            i = self.rq.popleft()
            while self.status[i] != _PENDING:
                i = self.rq.popleft()
            self.queued -= 1
            self._send(r, i)

    def _on_arrival(self, i: int) -> None:
        self.arrivals += 1
        if not self.queued:
            r = self._pick()
            if r is not None:
                self._change(+1)
                self._send(r, i)
                return
        if self.queued >= self.sc.queue_limit:
            self.status[i] = _REJECTED
            self.done[i] = self.env.now
            return
        self._change(+1)
        self.rq.append(i)
        self.queued += 1
        if not self.serving and not self.n_starting:
            self._sample()  # the activator pokes the autoscaler: scale from zero now
            self._decide()

    def _arrivals(self) -> Any:
        env, arrive, on = self.env, self.arrive, self._on_arrival
        for i in range(self.n):
            wait = arrive[i] - env.now
            if wait > 0:
                yield env.timeout(wait)
            on(i)

    # -- replicas ---------------------------------------------------------------------------------------------
    def _start_batch(self, r: _Replica) -> None:
        q = r.queue
        k = min(self.batch, len(q))
        batch = [q.popleft() for _ in range(k)]
        r.busy = True
        r.busy_since = self.env.now
        took = self.service[k].next()
        if self.quota is not None:  # the CPU part waits for quota; the rest (loopback, router hop) does not
            cpu = took * self.cpu_share
            took = took - cpu + _throttled(r, self.env.now, cpu, self.quota, self.period)
        ev = self.env.timeout(took)
        ev.callbacks.append(partial(self._finish, r, batch))

    def _finish(self, r: _Replica, batch: list[int], _ev: Any) -> None:
        now = self.env.now
        r.busy = False
        if r.state == "ready":
            r.busy_acc += now - r.busy_since
        if r.state == "stopped":
            return
        status, done = self.status, self.done
        answered = 0
        for i in batch:
            if status[i] == _PENDING:
                status[i] = _OK
                done[i] = now
                answered += 1
        if answered:
            r.served += answered
            r.outstanding -= answered
            self._change(-answered)
        if r.queue:
            self._start_batch(r)
        if r.state == "draining":
            if r.outstanding == 0:
                self._stop(r)
        elif answered:
            self._dispatch()

    def _stop(self, r: _Replica) -> None:
        r.state = "stopped"
        r.stopped = self.env.now

    def _ready(self, r: _Replica, _ev: Any) -> None:
        if r.state != "starting":
            return
        self.n_starting -= 1
        r.state = "ready"
        self.cold_starts.append(self.env.now - r.started)
        self._share_startup_cores()
        self.serving.append(r)
        self.serving.sort(key=lambda x: x.idx)
        self._dispatch()

    def _scale_to(self, desired: int) -> None:
        live = [r for r in self.replicas if r.state in ("starting", "ready")]
        for _ in range(desired - len(live)):
            r = _Replica(len(self.replicas), "starting", self.env.now, self.cold.next())
            self.replicas.append(r)
            self.n_starting += 1
            if self.startup_cores is None:
                self.env.timeout(r.cold_s).callbacks.append(partial(self._ready, r))
        surplus = len(live) - desired
        if surplus > 0:  # starting ones first (they serve nobody), then the newest ready ones
            for r in sorted(live, key=lambda x: (x.state != "starting", -x.idx))[:surplus]:
                if r.state == "starting":
                    self.n_starting -= 1
                    self._stop(r)
                    continue
                self.serving.remove(r)
                if r.busy:
                    r.busy_acc += self.env.now - r.busy_since
                r.state = "draining"
                if r.outstanding == 0:
                    self._stop(r)
        if desired != len(live):
            self._share_startup_cores()

    def _share_startup_cores(self) -> None:
        """With ``startup_cores``: re-plan every starting replica's ready time at the new sharing rate (a stale plan is
        ignored by its token)."""
        if self.startup_cores is None:
            return
        now = self.env.now
        starting = [r for r in self.replicas if r.state == "starting"]
        rate = min(1.0, self.startup_cores / len(starting)) if starting else 1.0
        for r in starting:
            r.left = max(0.0, r.left - (now - r.since) * r.rate)
            r.since, r.rate, r.token = now, rate, r.token + 1
            self.env.timeout(r.left / rate).callbacks.append(partial(self._ready_if_current, r, r.token))

    def _ready_if_current(self, r: _Replica, token: int, ev: Any) -> None:
        if token == r.token:
            self._ready(r, ev)

    # -- timeouts ---------------------------------------------------------------------------------------------
    def _watchdog(self) -> Any:
        """Times out the oldest unanswered request at its deadline; wakes about once per timeout_s when all is well."""
        env, status, arrive, timeout = self.env, self.status, self.arrive, self.timeout
        w = 0
        while w < self.n:
            if status[w] != _PENDING:
                w += 1
                continue
            due = arrive[w] + timeout
            if due > env.now:
                yield env.timeout(due - env.now)
                continue
            self._time_out(w)
            w += 1

    def _time_out(self, i: int) -> None:
        self.status[i] = _TIMEOUT
        self.done[i] = self.env.now
        self._change(-1)
        r = self.loc[i]
        if r is None:  # still in the router queue
            self.queued -= 1
            return
        r.outstanding -= 1  # the router answered; the replica still works the request off
        if r.state == "draining" and r.outstanding == 0:
            self._stop(r)
        elif r.state == "ready":
            self._dispatch()

    # -- control loop -----------------------------------------------------------------------------------------
    def _sample(self) -> None:
        now = self.env.now
        self._change(0)
        span = max(now - self.last_sample, 1e-9)
        busy = 0.0
        for r in self.serving:
            if r.busy:
                r.busy_acc += now - r.busy_since
                r.busy_since = now
            busy += r.busy_acc
        for r in self.replicas:
            r.busy_acc = 0.0
        ready = len(self.serving)
        cpu = busy * self.core_use / (span * ready * (self.sc.replica.cpu_limit or 1.0)) if ready else 0.0
        sample = Sample(at=now, concurrency=self.area / span, rps=self.arrivals / span, ready=ready, cpu=cpu)
        self.area, self.arrivals, self.last_sample = 0.0, 0, now
        self.ctl.observe(sample)
        self._point(now, sample.concurrency, sample.rps, cpu)

    def _point(self, now: float, concurrency: float, rps: float, cpu: float) -> None:
        counts = {"starting": 0, "draining": 0}
        for r in self.replicas:
            if r.state in counts:
                counts[r.state] += 1
        self.trajectory.append({"t": round(now, 6), "ready": len(self.serving), "starting": counts["starting"],
                                "draining": counts["draining"], "desired": self.desired, "queued": self.queued,
                                "concurrency": round(concurrency, 4), "rps": round(rps, 3), "cpu": round(cpu, 4),
                                "mode": self.mode})

    def _decide(self) -> None:
        decision = self.ctl.decide(self.env.now, len(self.serving))
        self.desired = max(self.sc.min_replicas, min(self.sc.max_replicas, int(decision.desired)))
        self.mode = decision.mode
        self._scale_to(self.desired)

    def _control(self) -> Any:
        env, sample_s, tick_s = self.env, self.sc.sample_s, float(self.ctl.tick_s)
        if not tick_s > 0:
            raise SimulationError(f"controller {getattr(self.ctl, 'name', '?')!r} has tick_s {tick_s}; needs > 0")
        k = j = 1
        end = self.duration + 1e-9
        while True:
            t_sample, t_tick = k * sample_s, j * tick_s
            t = min(t_sample, t_tick)
            if t > end:
                return
            if t > env.now:
                yield env.timeout(t - env.now)
            if t_sample <= t + 1e-12:
                self._sample()
                k += 1
            if t_tick <= t + 1e-12:
                self._decide()
                j += 1

    # -- run --------------------------------------------------------------------------------------------------
    def run(self) -> None:
        self._point(0.0, 0.0, 0.0, 0.0)
        env = self.env
        env.process(self._arrivals())
        env.process(self._control())
        env.process(self._watchdog())
        env.run()

    def held_seconds(self) -> float:
        """Replica-seconds held (starting, ready or draining) within [0, duration], exactly."""
        total = 0.0
        for r in self.replicas:
            stop = self.duration if r.stopped is None else min(r.stopped, self.duration)
            total += max(0.0, stop - min(r.started, self.duration))
        return total


def fifo(arrive: np.ndarray, service_s: np.ndarray) -> np.ndarray:
    """Completion times of one FIFO server for sorted ``arrive``: Lindley's recursion in closed form,
    ``done_j = S_j + max_{i<=j}(arrive_i - S_{i-1})`` with ``S`` the cumulative service."""
    cum = np.cumsum(service_s)
    return cum + np.maximum.accumulate(np.asarray(arrive, dtype=float) - (cum - service_s))


def _errors(status: np.ndarray) -> dict[str, int]:
    out = {}
    names = ((_REJECTED, ERROR_REJECTED), (_TIMEOUT, ERROR_TIMEOUT), (_CLIENT_TIMEOUT, ERROR_CLIENT_TIMEOUT))
    for code, name in names:
        count = int(np.sum(status == code))
        if count:
            out[name] = count
    return out


def _edge_stage(scheduled: np.ndarray, edge_ms: Sequence[float] | np.ndarray, rng: np.random.Generator) -> np.ndarray:
    samples = np.asarray(edge_ms, dtype=float)
    if samples.size == 0 or not np.all(samples > 0):
        raise SimulationError("edge service times must be a non-empty list of positive milliseconds")
    return fifo(scheduled, _Draws(samples, rng, 1e-3).many(scheduled.size))


def simulate(scenario: ScalingScenario, profile: ServiceProfile, *, seed: int = 0,
             controller: Controller | None = None, time_scale: float = 1.0, link: LinkProfile | None = None,
             link_bytes: tuple[int, int] | None = None, edge_ms: Sequence[float] | np.ndarray | None = None,
             shared_link: bool = True, handshake: bool = False, startup_cores: float | None = None) -> dict[str, Any]:
    """``summarize`` figures (``source="sim"``) of ``scenario`` served by replicas that behave like ``profile``.

    ``seed`` drives service, cold-start, edge and link draws; the arrivals come from ``scenario.arrival`` (its own
    seed), exactly as the real load generator's. ``controller``: a fresh one from the scenario's spec when None
    (``factory.make_controller`` with ``time_scale``). ``link`` + ``link_bytes=(up, down)``: cloud placement over that
    link; ``edge_ms`` as well: split placement (edge FIFO stage first). Added to the summary:
    ``replica_seconds_held`` (exact integral over [0, duration] of starting + ready + draining replicas),
    ``duration_s``, ``egress_bytes`` (response bytes sent over the link) and ``replica_served`` (requests each
    replica answered, by start order). ``startup_cores``: the cores concurrent cold starts share (one machine's,
    when replaying runs on it); None: each start independent, as pods on a cluster's nodes.
    """
    if startup_cores is not None and not startup_cores > 0:
        raise SimulationError(f"startup_cores must be > 0 or None, got {startup_cores}")
    if controller is None:
        controller = make_controller(scenario.controller, scenario=scenario, profile=profile, time_scale=time_scale)
    if link is not None and (link_bytes is None or len(link_bytes) != 2 or min(link_bytes) < 0):
        raise SimulationError("a link needs link_bytes=(request bytes, response bytes), both >= 0")
    scheduled = np.asarray(schedule(scenario.arrival), dtype=float)
    duration = float(schedule_duration(scenario.arrival, scheduled)) if scheduled.size else scenario.arrival.duration_s
    cluster_seq, link_seq, edge_seq = np.random.SeedSequence(seed).spawn(3)
    sent = scheduled if edge_ms is None else _edge_stage(scheduled, edge_ms, np.random.default_rng(edge_seq))
    net = None
    if link is not None:
        assert link_bytes is not None
        net = link_model(link, seed=link_seq, shared=shared_link, handshake=handshake)
        at_router = net.upload(int(link_bytes[0]), sent)
    else:
        at_router = sent
    order = np.argsort(at_router, kind="stable")
    cluster = _Cluster(scenario, profile, controller, at_router[order], duration,
                       np.random.default_rng(cluster_seq), startup_cores)
    cluster.run()
    answered = np.empty(scheduled.size)
    answered[order] = cluster.done
    status = np.empty(scheduled.size, dtype=np.int8)
    status[order] = cluster.status
    back = answered.copy()
    egress = 0
    if net is not None:
        assert link_bytes is not None
        ok_idx = np.flatnonzero(status == _OK)
        back[ok_idx] = net.download(int(link_bytes[1]), answered[ok_idx])
        egress = int(ok_idx.size) * int(link_bytes[1])
    latency_ms = (back - scheduled) * 1e3 + profile.overhead_ms
    late = latency_ms > (scenario.timeout_s + CLIENT_GRACE_S) * 1e3  # the client gives up (a slow link)
    status[(status == _OK) & late] = _CLIENT_TIMEOUT
    result = summarize(scenario, scheduled_s=scheduled, latency_ms=latency_ms, ok=status == _OK,
                       errors=_errors(status), trajectory=cluster.trajectory, cold_starts_s=cluster.cold_starts,
                       source="sim")
    result.update(replica_seconds_held=cluster.held_seconds(), duration_s=duration, egress_bytes=egress,
                  replica_served=[r.served for r in cluster.replicas])
    return result


def simulate_edge(scenario: ScalingScenario, edge_ms: Sequence[float] | np.ndarray, *, seed: int = 0) -> dict[str, Any]:
    """The edge-only placement: one device per site serving ``scenario.arrival`` FIFO with ``edge_ms`` samples; no
    router, no replicas, no link. ``edge_seconds`` in the result is the device time the run held (its duration)."""
    scheduled = np.asarray(schedule(scenario.arrival), dtype=float)
    duration = float(schedule_duration(scenario.arrival, scheduled)) if scheduled.size else scenario.arrival.duration_s
    _, _, edge_seq = np.random.SeedSequence(seed).spawn(3)
    done = _edge_stage(scheduled, edge_ms, np.random.default_rng(edge_seq)) if scheduled.size else scheduled
    latency_ms = (done - scheduled) * 1e3
    late = latency_ms > (scenario.timeout_s + CLIENT_GRACE_S) * 1e3
    status = np.where(late, _CLIENT_TIMEOUT, _OK).astype(np.int8)
    result = summarize(scenario, scheduled_s=scheduled, latency_ms=latency_ms, ok=status == _OK,
                       errors=_errors(status), trajectory=[], cold_starts_s=[], source="sim")
    result.update(replica_seconds_held=0.0, duration_s=duration, egress_bytes=0, edge_seconds=duration)
    return result
