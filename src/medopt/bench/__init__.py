"""Measurement harness shared by the benchmark scripts (and ``medopt bench``).

Why it exists: a ratio measured once, in sequence, on a machine of unknown ISA and load is not a number a reviewer can
trust. The harness times arms interleaved (round-robin, order rotated), reports medians with bootstrap confidence
intervals, flags runs started on a busy machine, and stamps every results JSON with a machine fingerprint.

Importing this package does no work: the submodules use only the standard library at import time.
"""

from medopt.bench.fingerprint import fingerprint
from medopt.bench.harness import difference_ci, interleaved, median_ci, ratio_ci, round_robin, summarize
from medopt.bench.load import LoadMonitor
from medopt.bench.results import MODES, BenchResultsError, goal, results_dir, results_path, write_results

__all__ = [
    "MODES", "BenchResultsError", "LoadMonitor", "difference_ci", "fingerprint", "goal", "interleaved", "median_ci",
    "ratio_ci", "results_dir", "results_path", "round_robin", "summarize", "write_results",
]
