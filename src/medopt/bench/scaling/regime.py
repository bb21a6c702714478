"""The regime map: which placement wins, by tail latency and by cost, across bandwidth x RTT x load x model.

Why simulated: each point is a whole autoscaling run (``sim.simulate``) driven by what the benchmark measured for
the model (a ``PlacementProfile``: cloud replica service times and cold starts, edge service times, the split's two
halves and the bytes it sends), so a grid of hundreds of points takes minutes instead of days of real runs.

Placements: *edge-only* — one device per site, a FIFO server with the edge service times, no link; *cloud-only* —
the scenario's replicas and controller behind the link (image up, response down); *split* — the edge half first
(FIFO), the intermediate tensor up the link, the cloud half on the replicas, the response down; *cloud-batched* —
cloud-only with ``max_batch_size > 1``. The load is one site's: all its requests share that site's link (they queue
at its rate, as over the proxy) and, for edge-only and split, its one edge device. A point's ``p99_ms`` counts
failed requests as infinitely slow (a placement cannot win by refusing work); ``p99_ok_ms`` is the tail of the
answered ones. Cost per 1,000 inferences uses ``prices.Prices``: replica-seconds held (starting, ready, draining),
response egress, edge device time.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from medopt.bench.arrivals import ArrivalSpec
from medopt.bench.links.profiles import LinkProfile
from medopt.bench.scaling.prices import Prices, default_prices
from medopt.bench.scaling.profile import ServiceProfile
from medopt.bench.scaling.scenario import ControllerSpec, ScalingScenario
from medopt.bench.scaling.sim import simulate, simulate_edge
from medopt.errors import MedoptError

Placement = Literal["edge-only", "cloud-only", "split", "cloud-batched"]
PLACEMENTS: tuple[Placement, ...] = ("edge-only", "cloud-only", "split", "cloud-batched")


class PlacementProfileError(MedoptError, ValueError):
    """A placement profile file that cannot be read or validated (one line: which file, which field)."""


def _positive(values: list[float]) -> list[float]:
    if not values or min(values) <= 0:
        raise ValueError("needs at least one sample, all > 0 ms")
    return values


class SplitProfile(BaseModel):
    """The model cut in two: the edge runs up to ``layer`` (``edge_ms``), sends ``bytes_up`` bytes, the cloud runs
    the rest (``cloud_ms`` per batch size, like ``ServiceProfile.service_ms``)."""

    model_config = ConfigDict(extra="forbid")
    layer: str = ""
    edge_ms: list[float]
    cloud_ms: dict[str, list[float]]
    bytes_up: int = Field(ge=1)

    @field_validator("edge_ms")
    @classmethod
    def _edge(cls, values: list[float]) -> list[float]:
        return _positive(values)

    @field_validator("cloud_ms")
    @classmethod
    def _cloud(cls, values: dict[str, list[float]]) -> dict[str, list[float]]:
        if "1" not in values:
            raise ValueError("needs samples for batch size 1")
        for key, samples in values.items():
            if not key.isdigit() or int(key) < 1:
                raise ValueError(f"batch size {key!r} is not a positive integer")
            _positive(samples)
        return values


class PlacementProfile(BaseModel):
    """Measurements of one model: ``cloud`` (one replica), ``edge_ms`` (the whole model on the edge device),
    ``image_bytes`` (request body sent to the cloud), ``response_bytes`` (answer sent back), optional ``split``."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1)
    cloud: ServiceProfile
    edge_ms: list[float]
    image_bytes: int = Field(ge=1)
    response_bytes: int = Field(ge=0)
    split: SplitProfile | None = None
    source: dict[str, Any] = Field(default_factory=dict, description="Where the measurements came from.")

    @field_validator("edge_ms")
    @classmethod
    def _edge(cls, values: list[float]) -> list[float]:
        return _positive(values)

    def placements(self) -> list[Placement]:
        """The placements this profile can be simulated in (split only when measured)."""
        return [p for p in PLACEMENTS if p != "split" or self.split is not None]

    def split_cloud(self) -> ServiceProfile:
        """The cloud half of the split as a replica profile (its cold starts are the whole model's: same server)."""
        if self.split is None:
            raise PlacementProfileError(f"model {self.model!r} has no split measurements")
        return ServiceProfile(model=f"{self.model}/cloud-part", service_ms=self.split.cloud_ms,
                              cold_start_s=self.cloud.cold_start_s, cpu_limit=self.cloud.cpu_limit,
                              threads=self.cloud.threads)


def _one_line(where: str, exc: ValidationError) -> str:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"])
    what = "unknown field" if err["type"] == "extra_forbidden" else str(err["msg"]).removeprefix("Value error, ")
    return f"placement profiles {where}: {field or '<top>'}: {what}"


def parse_placement_profiles(data: Any, where: str = "<data>") -> dict[str, PlacementProfile]:
    """Profiles by model from ``{"profiles": [...]}`` or a bare list of profile objects."""
    items = data.get("profiles") if isinstance(data, dict) else data
    if not isinstance(items, list) or not items:
        raise PlacementProfileError(f"placement profiles {where}: expected {{\"profiles\": [ ... ]}} with at least "
                                    "one profile")
    out: dict[str, PlacementProfile] = {}
    for i, item in enumerate(items):
        try:
            prof = PlacementProfile.model_validate(item)
        except ValidationError as exc:
            raise PlacementProfileError(_one_line(f"{where} (profile {i})", exc)) from None
        if prof.model in out:
            raise PlacementProfileError(f"placement profiles {where}: model {prof.model!r} appears twice")
        out[prof.model] = prof
    return out


def load_placement_profiles(path: str | Path) -> dict[str, PlacementProfile]:
    """Read a placement profile JSON file (see ``parse_placement_profiles`` for its shape)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PlacementProfileError(f"cannot read placement profiles {path}: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise PlacementProfileError(f"placement profiles {path}: not valid JSON: {exc}") from None
    return parse_placement_profiles(data, str(path))


def _quantile_all(latency_ms: Sequence[float], ok: Sequence[bool], q: float) -> float:
    """The ``q`` quantile over every request, a failed one counting as infinitely slow."""
    lat = np.asarray(latency_ms, dtype=float)
    if lat.size == 0:
        return math.inf
    lat = np.where(np.asarray(ok, dtype=bool), lat, math.inf)
    return float(np.quantile(lat, q, method="inverted_cdf"))


def base_scenario(rate: float, *, duration_s: float = 60.0, seed: int = 0, slo_ms: float = 200.0,
                  controller: ControllerSpec | None = None, container_concurrency: int = 1, min_replicas: int = 1,
                  max_replicas: int = 64) -> ScalingScenario:
    """A Poisson load of ``rate`` req/s served under KPA with target = containerConcurrency (Knative then aims at
    70% of it) unless ``controller`` says otherwise. The default containerConcurrency 1 suits a replica with one
    worker: a KPA target above 1 would let each replica queue work it can only do one request at a time."""
    spec = controller or ControllerSpec(kind="kpa", settings={"target": float(max(1, container_concurrency))})
    return ScalingScenario(name=f"rate-{rate:g}", arrival=ArrivalSpec(kind="poisson", rate=rate, duration_s=duration_s,
                                                                      seed=seed),
                           controller=spec, container_concurrency=container_concurrency, min_replicas=min_replicas,
                           max_replicas=max_replicas, initial_replicas=min_replicas, slo_ms=slo_ms)


def replicas_needed(profile: ServiceProfile, rate: float, batch: int = 1, utilization: float = 0.7) -> int:
    """Replicas that keep each one below ``utilization`` at ``rate`` (batches of ``batch`` when batching)."""
    per_request_s = profile.mean_ms(batch) / batch / 1e3
    return max(1, math.ceil(rate * per_request_s / utilization - 1e-9))


def warm(scenario: ScalingScenario, initial: int) -> ScalingScenario:
    """``scenario`` starting with ``initial`` replicas ready (clamped to its bounds): a steady-state run."""
    n = max(scenario.min_replicas, min(scenario.max_replicas, initial))
    return scenario.model_copy(update={"initial_replicas": n})


def default_batch(profile: ServiceProfile) -> int:
    """The batch size for cloud-batched: the largest measured one, or 8 when only batch 1 was measured."""
    largest = max(profile.batch_sizes())
    return largest if largest > 1 else 8


def batched(scenario: ScalingScenario, batch: int) -> ScalingScenario:
    """``scenario`` with replicas batching up to ``batch`` requests. A containerConcurrency below ``batch`` would
    never let a batch form (kserve #2102), so it is raised to ``batch``, and a KPA ``target`` with it in proportion
    (the same concurrency per batch slot)."""
    update: dict[str, Any] = {"replica": scenario.replica.model_copy(update={"max_batch_size": batch})}
    cc = scenario.container_concurrency
    if 0 < cc < batch:
        update["container_concurrency"] = batch
        settings = dict(scenario.controller.settings)
        if scenario.controller.kind == "kpa" and isinstance(settings.get("target"), (int, float)):
            settings["target"] = float(settings["target"]) * batch / cc
        update["controller"] = scenario.controller.model_copy(update={"settings": settings})
    return scenario.model_copy(update=update)


def run_placement(placement: Placement, prof: PlacementProfile, link: LinkProfile, scenario: ScalingScenario, *,
                  prices: Prices | None = None, seed: int = 0, batch_size: int | None = None,
                  warm_start: bool = True) -> dict[str, Any]:
    """Simulate one placement of ``prof`` over ``link`` under ``scenario`` and return its figures (no samples)."""
    prices = prices or default_prices()
    rate = scenario.arrival.rate
    edge_seconds = 0.0
    if placement == "edge-only":
        result = simulate_edge(scenario, prof.edge_ms, seed=seed)
        edge_seconds = result["edge_seconds"]
    else:
        cloud, up, edge_ms = prof.cloud, prof.image_bytes, None
        if placement == "split":
            if prof.split is None:
                raise PlacementProfileError(f"model {prof.model!r} has no split measurements")
            cloud, up, edge_ms = prof.split_cloud(), prof.split.bytes_up, prof.split.edge_ms
        batch = 1
        if placement == "cloud-batched":
            batch = batch_size or default_batch(cloud)
            scenario = batched(scenario, batch)
        if warm_start:
            scenario = warm(scenario, replicas_needed(cloud, rate, batch))
        result = simulate(scenario, cloud, seed=seed, link=link, link_bytes=(up, prof.response_bytes), edge_ms=edge_ms)
        if placement == "split":
            edge_seconds = result["duration_s"]
    samples = result["samples"]
    lat, ok = samples["latency_ms"], samples["ok"]
    good = np.asarray(lat, dtype=float)[np.asarray(ok, dtype=bool)] if lat else np.zeros(0)
    replica_s = float(result["replica_seconds_held"])
    return {
        "model": prof.model, "placement": placement, "link": link.name, "bandwidth_mbit": link.uplink,
        "rtt_ms": link.rtt_ms, "rate": rate, "requests": result["requests"], "ok": result["ok"],
        "errors": result["errors"], "p50_ms": _quantile_all(lat, ok, 0.50), "p99_ms": _quantile_all(lat, ok, 0.99),
        "p99_ok_ms": float(np.quantile(good, 0.99)) if good.size else None,
        "mean_ms": float(good.mean()) if good.size else None, "slo_ms": scenario.slo_ms,
        "slo_attainment": result["slo_attainment"], "replica_seconds": replica_s, "max_ready": result["max_ready"],
        "initial_replicas": scenario.initial_replicas, "batch_size": scenario.replica.max_batch_size,
        "egress_bytes": result["egress_bytes"], "edge_seconds": edge_seconds,
        "cost_per_1000": prices.cost_per_1000(replica_s, result["egress_bytes"], edge_seconds, result["ok"]),
    }


class RegimeGrid(BaseModel):
    """The axes of the map. Links get ``rate_mbit`` = bandwidth both ways, with the given jitter and loss."""

    model_config = ConfigDict(extra="forbid")
    bandwidth_mbit: list[float] = Field(default_factory=lambda: [2.0, 10.0, 100.0, 1000.0], min_length=1)
    rtt_ms: list[float] = Field(default_factory=lambda: [1.0, 20.0, 120.0, 600.0], min_length=1)
    rates: list[float] = Field(default_factory=lambda: [10.0, 100.0], min_length=1)
    models: list[str] | None = None
    placements: list[Placement] = Field(default_factory=lambda: list(PLACEMENTS), min_length=1)
    jitter_ms: float = Field(0.0, ge=0)
    loss_pct: float = Field(0.0, ge=0, le=100)
    duration_s: float = Field(60.0, gt=0)
    slo_ms: float = Field(200.0, gt=0)
    batch_size: int | None = Field(None, ge=2, le=64)
    warm_start: bool = True

    @field_validator("bandwidth_mbit", "rates")
    @classmethod
    def _positive_axis(cls, values: list[float]) -> list[float]:
        if min(values) <= 0:
            raise ValueError("every value must be > 0")
        return values

    @field_validator("rtt_ms")
    @classmethod
    def _rtt(cls, values: list[float]) -> list[float]:
        if min(values) < 0:
            raise ValueError("every RTT must be >= 0")
        return values

    def link(self, bandwidth_mbit: float, rtt_ms: float) -> LinkProfile:
        return LinkProfile(name=f"{bandwidth_mbit:g}mbit-{rtt_ms:g}ms", rtt_ms=rtt_ms, jitter_ms=self.jitter_ms,
                           rate_mbit=bandwidth_mbit, loss_pct=self.loss_pct)

    def size(self, profiles: dict[str, PlacementProfile]) -> int:
        """Number of simulated points for ``profiles``."""
        per_model = [sum(1 for p in self.placements if p in profiles[m].placements()) for m in self._models(profiles)]
        return len(self.bandwidth_mbit) * len(self.rtt_ms) * len(self.rates) * sum(per_model)

    def _models(self, profiles: dict[str, PlacementProfile]) -> list[str]:
        names = self.models if self.models is not None else sorted(profiles)
        missing = [m for m in names if m not in profiles]
        if missing:
            raise PlacementProfileError(f"regime grid names model {missing[0]!r}, not among the profiles "
                                        f"({', '.join(sorted(profiles))})")
        return names


def winners(points: Sequence[dict[str, Any]], slo_ms: float) -> dict[str, Any]:
    """Of one (bandwidth, RTT, load, model) group: the lowest p99 (ties: cheaper) and the cheapest whose p99 meets
    ``slo_ms`` (None when none does)."""
    by_p99 = min(points, key=lambda p: (p["p99_ms"], p["cost_per_1000"]))
    meeting = [p for p in points if p["p99_ms"] <= slo_ms]
    by_cost = min(meeting, key=lambda p: (p["cost_per_1000"], p["p99_ms"])) if meeting else None
    return {"by_p99": by_p99["placement"], "by_cost": by_cost["placement"] if by_cost else None,
            "p99_ms": by_p99["p99_ms"], "cost_per_1000": by_cost["cost_per_1000"] if by_cost else None}


def regime_map(profiles: dict[str, PlacementProfile], grid: RegimeGrid | None = None, *,
               scenario: ScalingScenario | None = None, prices: Prices | None = None, seed: int = 0) -> dict[str, Any]:
    """Simulate every grid point; return ``points`` (figures per point), ``winners`` (per bandwidth, RTT, load and
    model) and ``timing``. ``scenario`` (optional) supplies the controller, replica bounds, container concurrency and
    timeouts; its arrival is replaced by a Poisson load at each grid rate and its SLO by the grid's."""
    grid = grid or RegimeGrid()
    prices = prices or default_prices()
    models = grid._models(profiles)
    started = time.perf_counter()
    points: list[dict[str, Any]] = []
    table: list[dict[str, Any]] = []
    for bw in grid.bandwidth_mbit:
        for rtt in grid.rtt_ms:
            link = grid.link(bw, rtt)
            for rate in grid.rates:
                arrival = ArrivalSpec(kind="poisson", rate=rate, duration_s=grid.duration_s, seed=seed)
                if scenario is None:
                    sc = base_scenario(rate, duration_s=grid.duration_s, seed=seed, slo_ms=grid.slo_ms)
                else:
                    sc = scenario.model_copy(update={"arrival": arrival, "slo_ms": grid.slo_ms})
                for model in models:
                    prof = profiles[model]
                    group = [run_placement(p, prof, link, sc, prices=prices, seed=seed, batch_size=grid.batch_size,
                                           warm_start=grid.warm_start)
                             for p in grid.placements if p in prof.placements()]
                    if not group:
                        continue
                    points.extend(group)
                    table.append({"bandwidth_mbit": bw, "rtt_ms": rtt, "rate": rate, "model": model,
                                  **winners(group, grid.slo_ms)})
    wall = time.perf_counter() - started
    return {"grid": grid.model_dump(), "prices": prices.model_dump(), "points": points, "winners": table,
            "timing": {"points": len(points), "wall_s": wall, "points_per_s": len(points) / wall if wall else None}}
