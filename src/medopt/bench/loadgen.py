"""The load generator: open-loop (scheduled arrivals) or closed-loop (N outstanding) requests against one endpoint.

Why its own process (``run_load`` starts ``python -m medopt.bench.loadgen``): a generator sharing the server's
interpreter would steal its GIL and CPU and time itself. Open loop measures each request from its *scheduled* send
time, so a stall of the server (or of the generator) shows in the tail; closed loop measures from the actual send,
which is what closed-loop tools report and why they hide stalls (coordinated omission). Both are kept so the
difference can be shown.

Every run is bounded: requests time out after ``timeout_s``; after the schedule ends the outstanding ones get
``drain_s`` and are then counted as ``unfinished``; the subprocess itself is killed past its own bound.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from medopt.bench.arrivals import ArrivalSpec, schedule, schedule_duration
from medopt.bench.latency import percentiles, stable
from medopt.bench.protocols import Outcome, Sender, grpc_sender, http_request, http_sender, raw_request
from medopt.errors import MedoptError


class LoadGenError(MedoptError, RuntimeError):
    """The load generator could not run or did not finish within its bound."""


class Target(BaseModel):
    """The endpoint under load and the request it is sent."""

    model_config = ConfigDict(extra="forbid")
    url: str = Field(description="http://host:port for REST, host:port for gRPC")
    model: str = "medopt"
    protocol: Literal["v1", "v2-json", "v2-binary", "v2-grpc", "raw"] = "v2-binary"
    payload_file: str | None = Field(default=None, description="raw protocol: the file POSTed as the body")
    input_shape: list[int] = Field(default_factory=lambda: [1, 1, 28, 28], min_length=2)
    timeout_s: float = Field(default=10.0, gt=0)
    max_connections: int = Field(default=256, ge=1)

    @model_validator(mode="after")
    def _positive_shape(self) -> Target:
        if any(d <= 0 for d in self.input_shape):
            raise ValueError(f"input_shape dimensions must be positive, got {self.input_shape}")
        if self.protocol == "raw" and not self.payload_file:
            raise ValueError("the raw protocol needs payload_file (the encoded image to send)")
        return self


class LoadSpec(BaseModel):
    """One load run: open loop follows ``arrival``; closed loop keeps ``concurrency`` requests outstanding for
    ``arrival.duration_s``."""

    model_config = ConfigDict(extra="forbid")
    target: Target
    mode: Literal["open", "closed"] = "open"
    arrival: ArrivalSpec = Field(default_factory=ArrivalSpec)
    concurrency: int = Field(default=1, ge=1)
    window_s: float = Field(default=1.0, gt=0)
    drain_s: float = Field(default=5.0, ge=0)
    max_outstanding: int = Field(default=10_000, ge=1)
    warmup_requests: int = Field(default=5, ge=0)
    keep_samples: bool = True


class _Recorder:
    """Per-request times (seconds from the run's start) and outcomes."""

    def __init__(self) -> None:
        self.scheduled: list[float] = []
        self.sent: list[float] = []
        self.done: list[float] = []
        self.errors: list[str | None] = []
        self.bytes_out = 0
        self.bytes_in = 0

    def add(self, scheduled: float, sent: float, done: float, outcome: Outcome) -> None:
        self.scheduled.append(scheduled)
        self.sent.append(sent)
        self.done.append(done)
        self.errors.append(outcome.error)
        self.bytes_out += outcome.bytes_out
        self.bytes_in += outcome.bytes_in


async def _timed(send: Sender, rec: _Recorder, t0: float, scheduled: float) -> None:
    sent = time.perf_counter() - t0
    outcome = await send()
    rec.add(scheduled, sent, time.perf_counter() - t0, outcome)


async def _open_loop(spec: LoadSpec, send: Sender, rec: _Recorder, times: np.ndarray) -> int:
    """Send at the scheduled times; returns how many requests were still outstanding after the drain."""
    t0 = time.perf_counter()
    tasks: set[asyncio.Task[None]] = set()
    for scheduled in times:
        delay = t0 + float(scheduled) - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(tasks) >= spec.max_outstanding:
            now = time.perf_counter() - t0
            rec.add(float(scheduled), now, now, Outcome("generator-overload", 0, 0))
            continue
        task = asyncio.create_task(_timed(send, rec, t0, float(scheduled)))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    return await _drain(tasks, spec.drain_s)


async def _closed_loop(spec: LoadSpec, send: Sender, rec: _Recorder) -> int:
    """``concurrency`` workers, each sending its next request when the previous one returns."""
    t0 = time.perf_counter()
    end = spec.arrival.duration_s

    async def worker() -> None:
        while time.perf_counter() - t0 < end:
            now = time.perf_counter() - t0
            await _timed(send, rec, t0, now)

    tasks = {asyncio.create_task(worker()) for _ in range(spec.concurrency)}
    await asyncio.sleep(end)
    return await _drain(tasks, spec.drain_s + spec.target.timeout_s)


async def _drain(tasks: set[asyncio.Task[None]], seconds: float) -> int:
    pending = set(tasks)
    if pending:
        _, pending = await asyncio.wait(pending, timeout=seconds)
    for task in pending:
        task.cancel()
    return len(pending)


def _windows(rec: _Recorder, latency: np.ndarray, ok: np.ndarray, window_s: float, span: float
             ) -> list[dict[str, float]]:
    """Throughput (ok completions per second) and mean latency of the requests completed in each window."""
    done = np.asarray(rec.done)
    out = []
    for start in np.arange(0.0, span - 1e-9, window_s):
        sel = ok & (done >= start) & (done < start + window_s)
        out.append({"start_s": float(start), "throughput": float(sel.sum() / window_s),
                    "latency": float(latency[sel].mean()) if sel.any() else 0.0})
    return out


def summarize_run(spec: LoadSpec, rec: _Recorder, *, duration: float, unfinished: int) -> dict[str, Any]:
    """The run's figures: latency from scheduled (open) or sent (closed) time, rates, errors, bytes, windows.

    ``achieved_rps`` is ok completions over the time from the start to the last ok completion (at least the
    schedule's duration): a server slower than the offered rate stretches that span and shows a lower rate.
    """
    scheduled, sent, done = (np.asarray(v, dtype=float) for v in (rec.scheduled, rec.sent, rec.done))
    ok = np.asarray([e is None for e in rec.errors], dtype=bool)
    origin = scheduled if spec.mode == "open" else sent
    latency_ms = (done - origin) * 1000.0
    service_ms = (done - sent) * 1000.0
    errors: dict[str, int] = {}
    for e in rec.errors:
        if e is not None:
            errors[e] = errors.get(e, 0) + 1
    if unfinished:
        errors["unfinished"] = unfinished
    windows = _windows(rec, latency_ms, ok, spec.window_s, duration)
    result: dict[str, Any] = {
        "mode": spec.mode, "protocol": spec.target.protocol, "arrival": spec.arrival.kind,
        "duration_s": duration, "requests": len(rec.errors) + unfinished, "ok": int(ok.sum()),
        "offered_rps": (len(rec.errors) + unfinished) / duration if spec.mode == "open" else None,
        "achieved_rps": float(ok.sum() / max(duration, float(done[ok].max()) if ok.any() else 0.0)),
        "latency": percentiles(latency_ms[ok].tolist()),
        "service_latency": percentiles(service_ms[ok].tolist()),
        "send_lag": percentiles(((sent - scheduled) * 1000.0).tolist()) if spec.mode == "open" else None,
        "errors": errors, "error_rate": 1.0 - float(ok.sum()) / max(1, len(rec.errors) + unfinished),
        "bytes_out": rec.bytes_out, "bytes_in": rec.bytes_in,
        "windows": windows, "stable": stable(windows[1:]) if len(windows) > 1 else False,
    }
    if spec.keep_samples:
        result["samples"] = {"scheduled_s": scheduled.round(6).tolist(), "latency_ms": latency_ms.round(4).tolist(),
                             "ok": ok.tolist()}
    return result


async def _with_sender(spec: LoadSpec) -> dict[str, Any]:
    x = np.random.default_rng(0).standard_normal(spec.target.input_shape).astype(np.float32)
    if spec.target.protocol == "v2-grpc":
        import grpc

        async with grpc.aio.insecure_channel(spec.target.url) as channel:
            return await _measure(spec, grpc_sender(channel, spec.target.model, x, spec.target.timeout_s))
    import aiohttp

    if spec.target.protocol == "raw":
        try:
            request = raw_request(Path(str(spec.target.payload_file)).read_bytes())
        except OSError as exc:
            raise LoadGenError(f"cannot read payload_file {spec.target.payload_file}: {exc.strerror}") from None
    else:
        request = http_request(spec.target.protocol, spec.target.model, x)
    connector = aiohttp.TCPConnector(limit=spec.target.max_connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        return await _measure(spec, http_sender(session, spec.target.url, request, spec.target.timeout_s))


async def _measure(spec: LoadSpec, send: Sender) -> dict[str, Any]:
    for _ in range(spec.warmup_requests):
        await send()
    rec = _Recorder()
    t0_unix = time.time()
    if spec.mode == "open":
        times = schedule(spec.arrival)
        unfinished = await _open_loop(spec, send, rec, times)
        duration = schedule_duration(spec.arrival, times)
    else:
        unfinished = await _closed_loop(spec, send, rec)
        duration = spec.arrival.duration_s
    result = summarize_run(spec, rec, duration=duration, unfinished=unfinished)
    result["t0_unix"] = t0_unix  # lets a caller line up its own timeline (e.g. a replica trajectory) with samples
    return result


def run_load_here(spec: LoadSpec) -> dict[str, Any]:
    """Run ``spec`` in this process (what the subprocess does; tests of the engine call it directly)."""
    return asyncio.run(_with_sender(spec))


def run_bound(spec: LoadSpec) -> float:
    """Seconds after which a run of ``spec`` is certainly stuck (schedule + drain + timeouts + start-up)."""
    duration = spec.arrival.duration_s
    if spec.mode == "open" and spec.arrival.kind in ("step", "trace"):
        duration = schedule_duration(spec.arrival, schedule(spec.arrival))
    warm = spec.warmup_requests * spec.target.timeout_s
    return duration + spec.drain_s + 2 * spec.target.timeout_s + warm + 30.0


def run_load(spec: LoadSpec) -> dict[str, Any]:
    """Run ``spec`` in a fresh ``python -m medopt.bench.loadgen`` process and return its result.

    Raises:
        LoadGenError: the process failed or ran past ``run_bound(spec)`` (it is killed).
    """
    bound = run_bound(spec)
    try:
        proc = subprocess.run([sys.executable, "-m", "medopt.bench.loadgen"], input=spec.model_dump_json(),
                              capture_output=True, text=True, timeout=bound, check=False)
    except subprocess.TimeoutExpired:
        raise LoadGenError(f"load generator ran past its {bound:.0f} s bound and was killed") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise LoadGenError(f"load generator failed (exit {proc.returncode}): {last}")
    return json.loads(proc.stdout)


def main() -> int:
    """Read a ``LoadSpec`` as JSON on stdin, write the result JSON on stdout."""
    from pydantic import ValidationError

    try:
        spec = LoadSpec.model_validate_json(sys.stdin.read())
    except ValidationError as exc:
        first = exc.errors()[0]
        print(f"invalid load spec at {'.'.join(str(p) for p in first['loc'])}: {first['msg']}", file=sys.stderr)
        return 2
    try:
        result = run_load_here(spec)
    except MedoptError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    sys.stdout.write(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
