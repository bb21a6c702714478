"""Goals and the results JSON: one writer so every benchmark's JSON has the same header.

Every results JSON holds ``benchmark``, ``mode`` (full/quick/smoke), ``date``, ``fingerprint``, ``load`` (a
``LoadMonitor`` summary), ``loaded`` and ``goals``, then the benchmark's own payload.

Where it goes: ``$MEDOPT_BENCH_RESULTS`` when set (tests point it at a tmp dir), else ``out_dir``. Smoke results
never go to a repository's results folder: without the environment variable they go to a temporary folder.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medopt.bench.fingerprint import fingerprint
from medopt.bench.load import LoadMonitor
from medopt.errors import MedoptError

MODES = ("full", "quick", "smoke")
ENV_RESULTS = "MEDOPT_BENCH_RESULTS"
HEADER = ("benchmark", "mode", "date", "fingerprint", "load", "loaded", "goals")
GOAL_KEYS = ("name", "value", "target", "met")

class BenchResultsError(MedoptError, ValueError):
    """A results payload that would not make a valid results JSON (bad mode, goal or reserved key)."""


def goal(name: str, value: Any, target: str, met: bool, *, ci: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One entry of the ``goals`` list: the issue's target and whether this run met it (met or missed, both shown).

    ``ci`` (a ``median_ci``/``ratio_ci`` result the value is the median of) adds ``ci: [low, high]`` and ``n``, so
    the name stays stable while the uncertainty travels with the value.
    """
    out = {"name": name, "value": value, "target": target, "met": bool(met)}
    if ci is not None:
        out.update(ci=[ci["ci_low"], ci["ci_high"]], n=ci["n"])
    return out


def results_dir(mode: str, out_dir: Path | str | None = None) -> Path:
    """The folder results of ``mode`` go to (see the module docstring for the order)."""
    if mode not in MODES:
        raise BenchResultsError(f"mode must be one of {MODES}, got {mode!r}")
    env = os.environ.get(ENV_RESULTS)
    if env:
        return Path(env)
    if mode == "smoke":
        return Path(tempfile.gettempdir()) / "medopt-bench-smoke"
    if out_dir is None:
        raise BenchResultsError(f"no results folder: pass out_dir or set {ENV_RESULTS}")
    return Path(out_dir)


def results_path(name: str, mode: str, out_dir: Path | str | None = None) -> Path:
    """``<name>.json`` for full runs, ``<name>.quick.json`` and ``<name>.smoke.json`` otherwise."""
    suffix = "" if mode == "full" else f".{mode}"
    return results_dir(mode, out_dir) / f"{name}{suffix}.json"


def _check_goals(goals: Any) -> list[dict[str, Any]]:
    if not isinstance(goals, list):
        raise BenchResultsError("goals must be a list of goal() entries")
    for g in goals:
        if not isinstance(g, dict) or any(k not in g for k in GOAL_KEYS):
            raise BenchResultsError(f"each goal needs {GOAL_KEYS}, got {g!r}")
    return goals


def write_results(name: str, payload: dict[str, Any], *, mode: str, out_dir: Path | str | None = None,
                  load: LoadMonitor | dict[str, Any] | None = None, goals: list[dict[str, Any]] | None = None
                  ) -> Path:
    """Write the results JSON atomically (tmp file + replace) and return its path.

    ``goals`` defaults to ``payload["goals"]``. ``load`` is a LoadMonitor (or its summary); without one the load is
    a single reading taken now, judged by the same rule.
    """
    payload = dict(payload)
    goals = _check_goals(goals if goals is not None else payload.pop("goals", []))
    payload.pop("goals", None)
    reserved = sorted(set(payload) & set(HEADER))
    if reserved:
        raise BenchResultsError(f"payload may not set the header keys {reserved}")
    if isinstance(load, LoadMonitor):
        load_summary = load.summary()
    elif isinstance(load, dict):
        load_summary = load
    else:
        with LoadMonitor() as monitor:
            pass
        load_summary = monitor.summary()
    path = results_path(name, mode, out_dir)
    doc = {"benchmark": name, "mode": mode, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "fingerprint": fingerprint(), "load": load_summary, "loaded": bool(load_summary.get("loaded", False)),
           "goals": goals, **payload}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh, indent=2, default=float)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
