"""Shared helpers of the benchmark scripts: results JSON with goals, and a printed table."""

from __future__ import annotations

import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def goal(name: str, value: float, target: str, met: bool) -> dict[str, Any]:
    """One entry of the ``goals`` list: the issue's target and whether this run met it."""
    return {"name": name, "value": value, "target": target, "met": bool(met)}


def machine() -> dict[str, Any]:
    import torch

    return {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def write_results(name: str, payload: dict[str, Any], quick: bool) -> Path:
    """Write ``results/<name>.json`` (``<name>.quick.json`` for --quick runs, so they never replace a full run)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / (f"{name}.quick.json" if quick else f"{name}.json")
    payload = {"benchmark": name, "quick": quick, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "machine": machine(), **payload}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=float))
    tmp.replace(path)
    return path


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """A plain fixed-width table on stdout."""
    def fmt(v: Any) -> str:
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    widths = [max(len(c), *(len(fmt(r.get(c, ""))) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for r in rows:
        print("  ".join(fmt(r.get(c, "")).ljust(w) for c, w in zip(columns, widths)))
