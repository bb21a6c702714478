"""Benchmark command lines: a bad argument is a usage error (exit 2, one readable line), before any work starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.parametrize(("args", "expected"), [
    (["--round-to", "0"], "--round-to must be >= 1, got 0"),
    (["--warmup", "64-6"], "expected SIZE:EPOCHS"),
])
def test_compress_benchmark_rejects_bad_arguments(args: list[str], expected: str) -> None:
    done = subprocess.run([sys.executable, str(BENCHMARKS / "compress.py"), *args], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and expected in done.stderr
    assert "Traceback" not in done.stderr
