"""Choose the edge/cloud split point Neurosurgeon-style: measured per-split latencies plus what crosses the link.

For every split point k of the model (``serve.split.split_points``) the edge half (units <= k) and the cloud half are
exported to ONNX and timed with ONNX Runtime at the edge's and the cloud's thread counts; the edge time is multiplied
by the edge's slowdown. Predicted response time of a split at k with codec c over a link:

    edge_k x slowdown + RTT + bytes_k,c x 8 / uplink + cloud_k + response_bytes x 8 / downlink

and the same formula gives cloud-only (the encoded image crosses, no edge compute) and edge-only (nothing crosses).
The chosen split is the argmin over split points and codecs; the whole table is kept so the choice can be shown
with the numbers behind it.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medopt.serve.split import CODECS, export_split_onnx, split_model, split_points, wire_bytes


@dataclass(frozen=True)
class SplitTiming:
    """One split point's measured halves (ms, medians) and its intermediate tensor."""

    at: str
    edge_ms: float
    cloud_ms: float
    intermediate_shape: tuple[int, ...]
    wire_bytes: dict[str, int]


@dataclass(frozen=True)
class LinkRates:
    """What the planner needs of a link: round trip and the two directions' rates."""

    rtt_ms: float
    uplink_mbit: float
    downlink_mbit: float


@dataclass(frozen=True)
class Candidate:
    placement: str
    at: str | None
    codec: str | None
    bytes_up: int
    predicted_ms: float
    parts_ms: dict[str, float] = field(default_factory=dict)


def median_latency_ms(session: Any, x: np.ndarray, repeats: int) -> float:
    """Median ORT latency (ms) of ``session`` on ``x`` over ``repeats`` calls after one untimed call."""
    session.run(None, {"input": x})
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, {"input": x})
        times.append((time.perf_counter() - start) * 1000.0)
    return float(statistics.median(times))


def time_splits(model: Any, input_shape: tuple[int, int, int], workdir: Path, *, edge_threads: int = 1,
                cloud_threads: int = 1, repeats: int = 15) -> list[SplitTiming]:
    """Export and time both halves at every split point (the edge half at ``edge_threads``)."""
    from medopt.compress.export import ort_session

    x = np.random.default_rng(0).standard_normal((1, *input_shape)).astype(np.float32)
    out = []
    for at in split_points(model):
        split = split_model(model, at, input_shape=input_shape)
        files = export_split_onnx(split, workdir / at.replace(".", "_"))
        edge = ort_session(files.edge, threads=edge_threads)
        cloud = ort_session(files.cloud, threads=cloud_threads)
        mid = edge.run(None, {"input": x})[0]
        out.append(SplitTiming(at, median_latency_ms(edge, x, repeats), median_latency_ms(cloud, mid, repeats),
                               tuple(int(d) for d in split.intermediate_shape),
                               {c: wire_bytes(split.intermediate_shape, c) for c in CODECS}))
    return out


def _transfer_ms(nbytes: int, mbit: float) -> float:
    return nbytes * 8.0 / (mbit * 1e6) * 1000.0


def candidates(timings: list[SplitTiming], link: LinkRates, *, image_bytes: int, response_bytes: int,
               whole_edge_ms: float, whole_cloud_ms: float, edge_slowdown: float,
               codecs: tuple[str, ...] = CODECS) -> list[Candidate]:
    """Every placement's predicted response time over ``link`` (see the module docstring), cheapest first."""
    down = _transfer_ms(response_bytes, link.downlink_mbit)
    out = [Candidate("cloud", None, None, image_bytes,
                     link.rtt_ms + _transfer_ms(image_bytes, link.uplink_mbit) + whole_cloud_ms + down,
                     {"cloud_ms": whole_cloud_ms, "uplink_ms": _transfer_ms(image_bytes, link.uplink_mbit)}),
           Candidate("edge", None, None, 0, whole_edge_ms * edge_slowdown, {"edge_ms": whole_edge_ms * edge_slowdown})]
    for t in timings:
        for codec in codecs:
            up = _transfer_ms(t.wire_bytes[codec], link.uplink_mbit)
            edge = t.edge_ms * edge_slowdown
            out.append(Candidate("split", t.at, codec, t.wire_bytes[codec],
                                 edge + link.rtt_ms + up + t.cloud_ms + down,
                                 {"edge_ms": edge, "uplink_ms": up, "cloud_ms": t.cloud_ms}))
    return sorted(out, key=lambda c: c.predicted_ms)


def choose_split(cands: list[Candidate]) -> Candidate:
    """The cheapest split candidate (placement ``split``); cloud- and edge-only stay in the table for comparison."""
    return min((c for c in cands if c.placement == "split"), key=lambda c: c.predicted_ms)


def plan_table(timings: list[SplitTiming], cands: list[Candidate], chosen: Candidate) -> dict[str, Any]:
    """JSON-ready table: per split point its halves' times and bytes, every candidate's prediction, the choice."""
    return {"splits": [asdict(t) for t in timings], "candidates": [asdict(c) for c in cands],
            "chosen": asdict(chosen)}
