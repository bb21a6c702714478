"""Build a controller from a scenario's ``ControllerSpec``: the one place settings meet the scenario's bounds.

Why one factory: the real run and the simulator must build identical controllers from the same scenario, with the
replica bounds and container concurrency taken from the scenario (one source of truth) and the settings validated by
the controller's own config model, so a typo in a setting fails loudly instead of silently using a default.
``time_scale`` shrinks every time setting (windows, ticks, buckets) so a test can replay minutes in seconds.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from medopt.bench.scaling.buckets import ScalingError
from medopt.bench.scaling.controller import Controller
from medopt.bench.scaling.fixed import FixedController
from medopt.bench.scaling.hpa import HpaConfig, HpaController
from medopt.bench.scaling.kpa import KpaConfig, KpaController
from medopt.bench.scaling.profile import ServiceProfile
from medopt.bench.scaling.scenario import ControllerSpec, ScalingScenario
from medopt.bench.scaling.slo import SloConfig, SloController


class ControllerConfigError(ScalingError):
    """A controller setting is unknown, invalid, conflicts with the scenario, or a required input is missing."""


def _scenario_fields(kind: str, scenario: ScalingScenario) -> dict[str, Any]:
    """The config fields the scenario owns, by the controller's own names."""
    if kind == "kpa":
        return {"min_scale": scenario.min_replicas, "max_scale": scenario.max_replicas,
                "initial_scale": scenario.initial_replicas,
                "container_concurrency": scenario.container_concurrency}
    if kind == "hpa":
        return {"min_replicas": max(1, scenario.min_replicas), "max_replicas": scenario.max_replicas,
                "initial_replicas": max(1, scenario.initial_replicas)}
    if kind == "slo":
        return {"min_replicas": scenario.min_replicas, "max_replicas": scenario.max_replicas,
                "initial_replicas": scenario.initial_replicas, "slo_ms": scenario.slo_ms}
    return {}


_SCENARIO_NAME = {"min_scale": "min_replicas", "max_scale": "max_replicas", "initial_scale": "initial_replicas",
                  "container_concurrency": "container_concurrency", "min_replicas": "min_replicas",
                  "max_replicas": "max_replicas", "initial_replicas": "initial_replicas", "slo_ms": "slo_ms"}


def _config(kind: str, model: type[BaseModel], settings: dict[str, Any], owned: dict[str, Any]) -> Any:
    for key, value in settings.items():
        if key in owned and value != owned[key]:
            raise ControllerConfigError(
                f"{kind} setting {key!r}={value!r} conflicts with the scenario's {_SCENARIO_NAME[key]}="
                f"{owned[key]!r}; set it on the scenario instead")
    try:
        return model(**{**settings, **owned})
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "?"
        if first["type"] == "extra_forbidden":
            known = ", ".join(sorted(model.model_fields))
            raise ControllerConfigError(f"unknown {kind} setting {field!r} (known: {known})") from None
        raise ControllerConfigError(f"{kind} setting {field!r}: {first['msg']}") from None


_KINDS: dict[str, tuple[type[BaseModel], Any]] = {"kpa": (KpaConfig, KpaController), "hpa": (HpaConfig, HpaController),
                                                  "slo": (SloConfig, SloController)}


def under_limit(profile: ServiceProfile, scenario: ScalingScenario) -> ServiceProfile:
    """The profile as capacity planning must see it under the scenario's CPU limit: a profile measured without a
    limit has the CPU part of each service time divided by the limit (a saturated replica gets ``limit`` of a core)."""
    limit = scenario.replica.cpu_limit
    if limit is None or profile.cpu_limit is not None or limit >= scenario.replica.threads:
        return profile
    share = profile.cpu_share()
    slowed = {k: [v * (1 - share) + v * share / limit for v in vals] for k, vals in profile.service_ms.items()}
    return profile.model_copy(update={"service_ms": slowed, "cpu_limit": limit})


def make_controller(spec: ControllerSpec, *, scenario: ScalingScenario, profile: ServiceProfile | None = None,
                    time_scale: float = 1.0) -> Controller:
    """The controller ``spec`` names, bounded by ``scenario``, with its time settings multiplied by ``time_scale``."""
    if not time_scale > 0:
        raise ControllerConfigError(f"time_scale must be > 0, got {time_scale}")
    settings = dict(spec.settings)
    kind = spec.kind
    if kind == "fixed":
        unknown = sorted(set(settings) - {"replicas", "tick_s"})
        if unknown:
            raise ControllerConfigError(f"unknown fixed setting {unknown[0]!r} (known: replicas, tick_s)")
        replicas = settings.get("replicas", scenario.max_replicas)
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise ControllerConfigError(f"fixed setting 'replicas' must be an integer >= 0, got {replicas!r}")
        tick = settings.get("tick_s", 2.0)
        if not isinstance(tick, (int, float)) or isinstance(tick, bool) or tick <= 0:
            raise ControllerConfigError(f"fixed setting 'tick_s' must be a number > 0, got {tick!r}")
        return FixedController(replicas, tick_s=float(tick) * time_scale)
    if kind not in _KINDS:
        raise ControllerConfigError(f"unknown controller kind {kind!r} (known: fixed, {', '.join(_KINDS)})")
    config_model, cls = _KINDS[kind]
    config = _config(kind, config_model, settings, _scenario_fields(kind, scenario))
    if time_scale != 1.0:
        config = config.scaled(time_scale)
    if kind == "slo":
        if profile is None:
            raise ControllerConfigError("the slo controller needs a ServiceProfile (measured service times); "
                                        "pass profile=")
        return SloController(config, under_limit(profile, scenario))
    return cls(config)
