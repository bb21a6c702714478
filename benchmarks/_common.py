"""Shared helpers of the benchmark scripts: paths, the mode flags, and thin wrappers over ``medopt.bench``.

The measurement harness (interleaved timing, CIs, load, fingerprint, results JSON) lives in the library; this module
only supplies the repository's paths and the command-line flags every script shares.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from medopt.bench import LoadMonitor, goal, write_results as _write_results

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

__all__ = ["REPO", "RESULTS", "SHARED_DATA", "LoadMonitor", "add_mode_flags", "goal", "mode_of", "print_table",
           "write_results"]


def add_mode_flags(parser: argparse.ArgumentParser) -> None:
    """``--quick`` (a shorter run, results in ``<name>.quick.json``) and ``--smoke`` (tiny model, seconds)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="a shorter run; results in <name>.quick.json")
    group.add_argument("--smoke", action="store_true",
                       help="tiny model, seconds: checks the script still runs; results go to $MEDOPT_BENCH_RESULTS "
                            "or a temporary folder, never to benchmarks/results")


def mode_of(args: argparse.Namespace) -> str:
    """``smoke``, ``quick`` or ``full`` from the parsed flags."""
    if getattr(args, "smoke", False):
        return "smoke"
    return "quick" if getattr(args, "quick", False) else "full"


def write_results(name: str, payload: dict[str, Any], quick: bool | None = None, *, mode: str | None = None,
                  load: Any = None) -> Path:
    """Write the results JSON under ``benchmarks/results`` (see ``medopt.bench.write_results``).

    ``quick`` is the older spelling of ``mode="quick"``; pass ``mode`` (full/quick/smoke) in new code.
    """
    if mode is None:
        mode = "quick" if quick else "full"
    return _write_results(name, payload, mode=mode, out_dir=RESULTS, load=load)


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """A plain fixed-width table on stdout."""
    def fmt(v: Any) -> str:
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    widths = [max(len(c), *(len(fmt(r.get(c, ""))) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for r in rows:
        print("  ".join(fmt(r.get(c, "")).ljust(w) for c, w in zip(columns, widths)))
