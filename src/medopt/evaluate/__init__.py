"""Evaluation library: metrics, bootstrap CIs and paired tests, latency/memory profiling, the HTML report.

Names are loaded lazily so that importing the package stays cheap (no torch or matplotlib until used).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "SCALAR_METRICS": "metrics",
    "MetricInputError": "metrics",
    "compute_metrics": "metrics",
    "roc_points": "metrics",
    "StatsInputError": "stats",
    "bootstrap_ci": "stats",
    "mcnemar_test": "stats",
    "delong_test": "stats",
    "ProfileInputError": "profile",
    "measure_latency": "profile",
    "latency_by_batch": "profile",
    "peak_memory_mb": "profile",
    "ReportInputError": "report",
    "write_report": "report",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'medopt.evaluate' has no attribute {name!r}")
    return getattr(importlib.import_module(f"medopt.evaluate.{module}"), name)
