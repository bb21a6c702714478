"""The placement planner: for one link, SLO and load, the cheapest placement and autoscaling settings that meet it.

Why simulate rather than use a formula: a Neurosurgeon-style sum (``splitplan``) ignores queueing at the replicas,
on the link and at the edge device, cold starts and the controller's reaction; a short simulated run of each
candidate (``regime.run_placement``) includes them. Candidates are every placement the profiles allow times a small
set of KPA settings (containerConcurrency and target, replica range) around the replicas the load needs. The answer
is the cheapest candidate whose p99 (failures counting as infinitely slow) meets the SLO at every planned rate; if
none does, the one with the lowest p99, flagged ``meets_slo=False``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from medopt.bench.links.profiles import LinkProfile
from medopt.bench.scaling.buckets import ScalingError
from medopt.bench.scaling.prices import Prices, default_prices
from medopt.bench.scaling.regime import (
    Placement,
    PlacementProfile,
    base_scenario,
    default_batch,
    replicas_needed,
    run_placement,
)
from medopt.bench.scaling.scenario import ControllerSpec

DEFAULT_RATES = (5.0, 20.0, 80.0)
"""Loads (req/s) planned for when no rate is given: the plan must hold at each."""
MAX_REPLICAS_CAP = 64


class PlanError(ScalingError):
    """A plan that cannot be made (non-positive SLO or rate, no profiles, an unknown model)."""


class ControllerChoice(BaseModel):
    """One autoscaling setting as KServe spells it: ``scaleTarget`` is the KPA target annotation (Knative aims at
    70% of it), ``containerConcurrency`` the hard limit per replica (0: none)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    container_concurrency: int = Field(ge=0)
    scale_target: int = Field(ge=1)
    min_replicas: int = Field(ge=0)
    max_replicas: int = Field(ge=1)
    scale_metric: str = "concurrency"

    def spec(self) -> ControllerSpec:
        return ControllerSpec(kind="kpa", settings={"target": float(self.scale_target)})


OBJECTIVES = ("cost", "p99")  # cheapest meeting the SLO; lowest p99


class Plan(BaseModel):
    """The recommendation and its reasons; ``candidates`` holds every simulated option's figures."""

    model_config = ConfigDict(extra="forbid")
    model: str
    placement: Placement
    link: str
    slo_p99_ms: float
    rates: list[float]
    meets_slo: bool
    p99_ms: float
    cost_per_1000: float
    min_replicas: int | None = None
    max_replicas: int | None = None
    scale_target: int | None = None
    scale_metric: str | None = None
    container_concurrency: int | None = None
    batch_size: int | None = None
    why: list[str] = Field(default_factory=list)
    candidates: list[dict[str, Any]] = Field(default_factory=list)


def default_choices(placement: Placement, prof: PlacementProfile, rate: float,
                    batch_size: int | None = None) -> list[ControllerChoice]:
    """A few KPA settings for ``placement`` at ``rate``: containerConcurrency 1 or 2 (x the batch when batching),
    target = containerConcurrency, min 1 or the replicas the load needs, max twice that (at least 2)."""
    if placement == "edge-only":
        return []
    cloud = prof.split_cloud() if placement == "split" else prof.cloud
    batch = (batch_size or default_batch(cloud)) if placement == "cloud-batched" else 1
    need = min(MAX_REPLICAS_CAP, replicas_needed(cloud, rate, batch))
    top = min(MAX_REPLICAS_CAP, max(2, 2 * need))
    out: list[ControllerChoice] = []
    for cc in (batch, 2 * batch):
        for low in sorted({1, need}):
            out.append(ControllerChoice(container_concurrency=cc, scale_target=cc, min_replicas=low,
                                        max_replicas=max(top, low)))
    return out


def _fmt_cost(x: float) -> str:
    return "n/a (nothing answered)" if math.isinf(x) else f"${x:.4g} per 1000"


def _fmt_ms(x: float) -> str:
    return "inf (requests failed)" if math.isinf(x) else f"{x:.0f} ms"


def _evaluate(placement: Placement, prof: PlacementProfile, link: LinkProfile, slo: float, rates: Sequence[float],
              choice: ControllerChoice | None, prices: Prices, duration_s: float, seed: int,
              batch_size: int | None) -> dict[str, Any]:
    """One candidate over every rate: worst p99, mean cost."""
    runs = []
    for rate in rates:
        if choice is None:
            sc = base_scenario(rate, duration_s=duration_s, seed=seed, slo_ms=slo)
        else:
            sc = base_scenario(rate, duration_s=duration_s, seed=seed, slo_ms=slo, controller=choice.spec(),
                               container_concurrency=choice.container_concurrency,
                               min_replicas=choice.min_replicas, max_replicas=choice.max_replicas)
        runs.append(run_placement(placement, prof, link, sc, prices=prices, seed=seed, batch_size=batch_size))
    p99 = max(r["p99_ms"] for r in runs)
    cost = sum(r["cost_per_1000"] for r in runs) / len(runs)
    return {"model": prof.model, "placement": placement, "choice": choice.model_dump() if choice else None,
            "p99_ms": p99, "cost_per_1000": cost, "meets_slo": p99 <= slo,
            "batch_size": runs[0]["batch_size"] if placement == "cloud-batched" else None,
            "max_ready": max(r["max_ready"] for r in runs),
            "errors": sum(sum(r["errors"].values()) for r in runs)}


def plan(link: LinkProfile, slo_p99_ms: float, rate: float | None, profiles: dict[str, PlacementProfile],
         prices: Prices | None = None, *, model: str | None = None, duration_s: float = 60.0, seed: int = 0,
         batch_size: int | None = None,
         choices: dict[Placement, list[ControllerChoice]] | None = None, objective: str = "cost") -> Plan:
    """The cheapest placement + KPA settings meeting ``slo_p99_ms`` over ``link`` at ``rate`` req/s (or at every
    one of ``DEFAULT_RATES``), among the models in ``profiles`` (or just ``model``); ``objective="p99"``: the
    lowest p99 instead, whatever it costs (the lowest p99 is also the answer when nothing meets the SLO)."""
    if objective not in OBJECTIVES:
        raise PlanError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    if not slo_p99_ms > 0:
        raise PlanError(f"the p99 SLO must be > 0 ms, got {slo_p99_ms:g}")
    if rate is not None and not rate > 0:
        raise PlanError(f"the rate must be > 0 req/s, got {rate:g}")
    if not profiles:
        raise PlanError("no placement profiles to plan from")
    if model is not None and model not in profiles:
        raise PlanError(f"model {model!r} has no placement profile (known: {', '.join(sorted(profiles))})")
    prices = prices or default_prices()
    rates = [float(rate)] if rate is not None else list(DEFAULT_RATES)
    names = [model] if model is not None else sorted(profiles)
    candidates: list[dict[str, Any]] = []
    for name in names:
        prof = profiles[name]
        for placement in prof.placements():
            options: list[ControllerChoice | None]
            if placement == "edge-only":
                options = [None]
            elif choices is not None and placement in choices:
                options = list(choices[placement])
            else:
                options = list(default_choices(placement, prof, max(rates), batch_size))
            for choice in options:
                candidates.append(_evaluate(placement, prof, link, slo_p99_ms, rates, choice, prices, duration_s,
                                            seed, batch_size))
    meeting = [c for c in candidates if c["meets_slo"]]
    if meeting and objective == "cost":
        best = min(meeting, key=lambda c: (c["cost_per_1000"], c["p99_ms"]))
    else:
        best = min(candidates, key=lambda c: (c["p99_ms"], c["cost_per_1000"]))
    return _plan(best, candidates, link, slo_p99_ms, rates, bool(best["meets_slo"]), objective)


def _best_per_placement(candidates: Sequence[dict[str, Any]], slo: float) -> dict[tuple[str, str], dict[str, Any]]:
    """Per (model, placement): its cheapest SLO-meeting option, else its lowest p99."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for c in candidates:
        key = (c["model"], c["placement"])
        seen = out.get(key)
        rank = (not c["meets_slo"], c["cost_per_1000"] if c["meets_slo"] else c["p99_ms"])
        if seen is None or rank < (not seen["meets_slo"],
                                   seen["cost_per_1000"] if seen["meets_slo"] else seen["p99_ms"]):
            out[key] = c
    return out


def _plan(best: dict[str, Any], candidates: list[dict[str, Any]], link: LinkProfile, slo: float,
          rates: list[float], met: bool, objective: str = "cost") -> Plan:
    at = f"{rates[0]:g} req/s" if len(rates) == 1 else f"each of {', '.join(f'{r:g}' for r in rates)} req/s"
    several = len({c["model"] for c in candidates}) > 1

    def name(c: dict[str, Any]) -> str:
        return c["placement"] + (f" ({c['model']})" if several else "")

    label = name(best)
    if met:
        why = [f"{label}: p99 {_fmt_ms(best['p99_ms'])} meets {slo:g} ms at {_fmt_cost(best['cost_per_1000'])} "
               f"over {link.name} at {at}"]
    else:
        why = [f"no option meets p99 {slo:g} ms over {link.name} at {at}; the lowest p99 is {label} at "
               f"{_fmt_ms(best['p99_ms'])} ({_fmt_cost(best['cost_per_1000'])})"]
    for key, c in sorted(_best_per_placement(candidates, slo).items()):
        if key == (best["model"], best["placement"]):
            continue
        other = name(c)
        if c["meets_slo"]:
            why.append(f"{other}: p99 {_fmt_ms(c['p99_ms'])} also meets it, at {_fmt_cost(c['cost_per_1000'])}")
        else:
            why.append(f"{other}: p99 {_fmt_ms(c['p99_ms'])} misses {slo:g} ms "
                       f"({_fmt_cost(c['cost_per_1000'])})")
    choice = best["choice"]
    fields: dict[str, Any] = {}
    if choice is not None:
        same = [c for c in candidates if c["model"] == best["model"] and c["placement"] == best["placement"]]
        good = sum(1 for c in same if c["meets_slo"])
        why.append(f"KPA target {choice['scale_target']:g} with containerConcurrency "
                   f"{choice['container_concurrency']}, "
                   f"{choice['min_replicas']}-{choice['max_replicas']} replicas (peak {best['max_ready']} ready): "
                   f"{'cheapest' if met and objective == 'cost' else 'lowest p99'} of {len(same)} settings tried "
                   f"({good} met the SLO)")
        fields = {"min_replicas": choice["min_replicas"], "max_replicas": choice["max_replicas"],
                  "scale_target": choice["scale_target"], "scale_metric": choice["scale_metric"],
                  "container_concurrency": choice["container_concurrency"]}
    else:
        why.append("edge-only needs no cloud replicas: one edge device per site serves every request")
    return Plan(model=best["model"], placement=best["placement"], link=link.name, slo_p99_ms=slo, rates=rates,
                meets_slo=met, p99_ms=best["p99_ms"], cost_per_1000=best["cost_per_1000"],
                batch_size=best["batch_size"], why=why, candidates=candidates, **fields)


def to_inference_service_fields(plan: Plan) -> dict[str, Any]:
    """The KServe InferenceService predictor fields of ``plan`` (empty for edge-only: nothing runs in the cloud)."""
    if plan.placement == "edge-only" or plan.min_replicas is None:
        return {}
    return {"minReplicas": plan.min_replicas, "maxReplicas": plan.max_replicas, "scaleTarget": plan.scale_target,
            "scaleMetric": plan.scale_metric, "containerConcurrency": plan.container_concurrency}


def to_deploy_overrides(plan: Plan) -> list[str]:
    """``--set`` overrides that give the deploy step this plan (``medopt run CONFIG --set ...``); none for edge-only.
    A concurrency metric needs Knative's KPA, so the plan deploys Serverless."""
    if plan.placement == "edge-only" or plan.min_replicas is None:
        return []
    return [f"deploy.min_replicas={plan.min_replicas}", f"deploy.max_replicas={plan.max_replicas}",
            f"deploy.scale_metric={plan.scale_metric}", f"deploy.scale_target={plan.scale_target}",
            f"deploy.container_concurrency={plan.container_concurrency}", "deploy.deployment_mode=Serverless"]
