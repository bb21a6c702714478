"""Benchmarks cannot rot: every benchmark script's ``--smoke`` run (tiny model, seconds) exits 0 and writes a results
JSON with the harness header (mode, fingerprint, load, goals), into the folder the test names, never the repo's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medopt.bench.scaling.cgroups import cpu_limits_available

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"
PNEUMONIA_NPZ = REPO.parent / "shared" / "data" / "pneumoniamnist.npz"
# script -> (results name, needs the real PneumoniaMNIST file)
SCRIPTS = {
    "autoscale.py": ("autoscale", False),
    "compress.py": ("compress", True),
    "federate.py": ("federate", True),
    "hybrid.py": ("hybrid", False),
    "int8_profile.py": ("int8_profile", False),
    "pneumonia_resnet18.py": ("pneumonia_resnet18", True),
    "ray_train.py": ("ray_train", False),
    "regime.py": ("regime", False),
    "serve.py": ("serve", False),
}
NEEDS_CPU_LIMITS = {"autoscale.py"}  # replicas under cgroup CPU quotas


def test_every_benchmark_script_is_covered() -> None:
    assert {p.name for p in BENCHMARKS.glob("*.py") if not p.name.startswith("_")} == set(SCRIPTS)


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_benchmark_smoke_run(script: str, tmp_path: Path) -> None:
    name, needs_data = SCRIPTS[script]
    if needs_data and not PNEUMONIA_NPZ.is_file():
        pytest.skip(f"real PneumoniaMNIST not found at {PNEUMONIA_NPZ}")
    if script in NEEDS_CPU_LIMITS and not cpu_limits_available():
        pytest.skip("no writable cgroup cpu controller for replica CPU limits")
    out = tmp_path / "results"
    env = {**os.environ, "MEDOPT_BENCH_RESULTS": str(out)}
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), "--smoke"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    path = out / f"{name}.smoke.json"
    assert path.is_file(), sorted(p.name for p in out.glob("*"))
    doc = json.loads(path.read_text())
    assert doc["benchmark"] == name and doc["mode"] == "smoke"
    assert isinstance(doc["loaded"], bool) and "load_before" in doc["load"]
    assert {"cpu_model", "isa", "cpu_count", "versions"} <= set(doc["fingerprint"])
    assert doc["goals"], "a benchmark without goals says nothing about its targets"
    for g in doc["goals"]:
        assert {"name", "value", "target", "met"} <= set(g) and isinstance(g["met"], bool)
    assert not (BENCHMARKS / "results" / f"{name}.smoke.json").exists()
