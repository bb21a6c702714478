"""The measurement harness: rotation, warm-up, bootstrap intervals, the loaded flag, the fingerprint, the JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from medopt.bench import (BenchResultsError, LoadMonitor, difference_ci, fingerprint, goal, interleaved, median_ci,
                          ratio_ci, results_path, summarize, write_results)
from medopt.bench.fingerprint import ISA_FLAGS, PACKAGES


def test_interleaved_rotates_the_order_each_repeat() -> None:
    calls: list[str] = []
    arms = {name: (lambda name=name: calls.append(name) or 1.0) for name in "abc"}
    interleaved(arms, repeats=4, warmup=0)
    assert calls == list("abc" "bca" "cab" "abc")


def test_interleaved_without_rotation_keeps_the_order() -> None:
    calls: list[str] = []
    arms = {name: (lambda name=name: calls.append(name) or 1.0) for name in "ab"}
    interleaved(arms, repeats=2, warmup=0, rotate=False)
    assert calls == list("abab")


def test_warmup_rounds_are_run_but_not_recorded() -> None:
    counter = {"a": 0, "b": 0}

    def arm(name: str) -> float:
        counter[name] += 1
        return float(counter[name])

    samples = interleaved({"a": lambda: arm("a"), "b": lambda: arm("b")}, repeats=3, warmup=2)
    assert counter == {"a": 5, "b": 5}
    assert samples == {"a": [3.0, 4.0, 5.0], "b": [3.0, 4.0, 5.0]}


def test_an_arm_returning_none_is_timed() -> None:
    samples = interleaved({"a": lambda: None}, repeats=2, warmup=0)
    assert len(samples["a"]) == 2 and all(s >= 0 for s in samples["a"])


def test_interleaved_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        interleaved({}, repeats=1)
    with pytest.raises(ValueError):
        interleaved({"a": lambda: 1.0}, repeats=0)


def test_median_ci_contains_the_median_and_narrows_with_more_samples() -> None:
    rng = np.random.default_rng(1)
    small = median_ci(rng.normal(10, 1, 8).tolist())
    large = median_ci(rng.normal(10, 1, 400).tolist())
    for ci in (small, large):
        assert ci["ci_low"] <= ci["median"] <= ci["ci_high"]
    assert large["n"] == 400
    assert large["ci_high"] - large["ci_low"] < small["ci_high"] - small["ci_low"]


def test_median_ci_of_one_sample_is_a_point() -> None:
    assert median_ci([3.0]) == {"median": 3.0, "ci_low": 3.0, "ci_high": 3.0, "n": 1, "min": 3.0, "max": 3.0}
    with pytest.raises(ValueError):
        median_ci([])


def test_paired_ratio_of_a_two_times_pair_is_two() -> None:
    # Drift shared by both arms (repeat i ran at one time): the paired ratio stays at 2 with a tight interval.
    drift = np.random.default_rng(2).uniform(1, 3, 7)
    ci = ratio_ci((2 * drift).tolist(), drift.tolist(), paired=True)
    assert ci["median"] == pytest.approx(2.0)
    assert ci["ci_low"] <= 2.0 <= ci["ci_high"]
    assert ci["ci_high"] - ci["ci_low"] < 1e-9
    unpaired = ratio_ci((2 * drift).tolist(), drift.tolist(), paired=False)
    assert unpaired["ci_high"] - unpaired["ci_low"] > ci["ci_high"] - ci["ci_low"]
    with pytest.raises(ValueError):
        ratio_ci([1.0, 2.0], [1.0], paired=True)


def test_paired_difference() -> None:
    base = np.random.default_rng(3).uniform(1, 3, 9)
    ci = difference_ci((base + 0.5).tolist(), base.tolist())
    assert ci["median"] == pytest.approx(0.5) and ci["ci_low"] <= 0.5 <= ci["ci_high"]


def test_summarize_orients_ratios_so_above_one_is_better() -> None:
    times = {"slow": [2.0, 2.2, 2.1], "fast": [1.0, 1.1, 1.05]}
    s = summarize(times, baseline="slow", higher_is_better=False)
    assert set(s["ratios_vs_baseline"]) == {"fast"}
    assert s["ratios_vs_baseline"]["fast"]["median"] == pytest.approx(2.0)
    assert s["arms"]["slow"]["samples"] == [2.0, 2.2, 2.1]
    throughput = summarize({"base": [10.0, 11.0], "better": [20.0, 22.0]}, baseline="base", higher_is_better=True)
    assert throughput["ratios_vs_baseline"]["better"]["median"] == pytest.approx(2.0)
    with pytest.raises(ValueError):
        summarize(times, baseline="missing", higher_is_better=False)


def _reader(values: list[float]):
    it = iter(values)
    return lambda: (next(it, values[-1]), 0.0, 0.0)


def test_loaded_when_the_machine_started_busy() -> None:
    with LoadMonitor(reader=_reader([3.0, 3.0]), cores=4, interval=60) as monitor:
        pass
    summary = monitor.summary()
    assert summary["loaded"] and summary["started_busy"]
    assert {"load_before", "load_during_max", "load_during_median", "load_after", "loaded"} <= set(summary)


def test_not_loaded_on_a_quiet_machine_even_with_the_benchmarks_own_load() -> None:
    # Before 0.1 on 4 cores; during, the benchmark's own 2 threads push the load to 2.5 (2.5 - 2 < 0.5 x 4).
    with LoadMonitor(reader=_reader([0.1, 2.5]), cores=4, own_load=2, interval=60) as monitor:
        pass
    assert not monitor.summary()["loaded"]


def test_loaded_when_others_load_the_machine_during_the_run() -> None:
    with LoadMonitor(reader=_reader([0.1, 6.0]), cores=4, own_load=1, interval=60) as monitor:
        pass
    summary = monitor.summary()
    assert summary["loaded"] and summary["busy_during"] and not summary["started_busy"]


def test_load_monitor_samples_during_the_run() -> None:
    import time

    with LoadMonitor(reader=_reader([0.0]), cores=2, interval=0.01) as monitor:
        time.sleep(0.1)
    assert monitor.summary()["load_during_samples"] >= 1


def test_fingerprint_keys(tmp_path: Path) -> None:
    fp = fingerprint()
    assert {"cpu_model", "isa", "cpu_count", "cpu_affinity", "memory_bytes", "platform", "python", "versions",
            "torch_threads"} <= set(fp)
    assert set(fp["isa"]) == set(ISA_FLAGS) and all(isinstance(v, bool) for v in fp["isa"].values())
    assert set(fp["versions"]) == set(PACKAGES)
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor : 0\nmodel name : Test CPU\nflags : fpu avx2 avx512f\n")
    fake = fingerprint(cpuinfo=cpuinfo, meminfo=tmp_path / "missing")
    assert fake["cpu_model"] == "Test CPU"
    assert fake["isa"]["avx2"] and fake["isa"]["avx512f"] and not fake["isa"]["avx512_vnni"]


def test_importing_the_package_imports_no_heavy_library() -> None:
    code = "import sys, medopt.bench; print(sorted(m for m in ('torch', 'numpy', 'ray', 'medopt.pipeline') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_write_results_header_and_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEDOPT_BENCH_RESULTS", raising=False)
    with LoadMonitor(reader=_reader([0.0]), cores=2, interval=60) as monitor:
        pass
    path = write_results("demo", {"goals": [goal("g", 1.5, ">= 1", True)], "extra": 1}, mode="quick",
                         out_dir=tmp_path, load=monitor)
    assert path == tmp_path / "demo.quick.json"
    doc = json.loads(path.read_text())
    assert doc["benchmark"] == "demo" and doc["mode"] == "quick" and doc["loaded"] is False
    assert doc["goals"] == [{"name": "g", "value": 1.5, "target": ">= 1", "met": True}] and doc["extra"] == 1
    assert {"date", "fingerprint", "load"} <= set(doc)
    assert results_path("demo", "full", tmp_path) == tmp_path / "demo.json"
    assert not list(tmp_path.glob("*.tmp"))


def test_smoke_results_never_go_to_out_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEDOPT_BENCH_RESULTS", raising=False)
    assert results_path("demo", "smoke", tmp_path).parent != tmp_path
    monkeypatch.setenv("MEDOPT_BENCH_RESULTS", str(tmp_path / "env"))
    path = write_results("demo", {}, mode="smoke", out_dir=tmp_path / "repo")
    assert path == tmp_path / "env" / "demo.smoke.json" and json.loads(path.read_text())["goals"] == []


def test_write_results_rejects_bad_payloads(tmp_path: Path) -> None:
    with pytest.raises(BenchResultsError):
        write_results("demo", {}, mode="fast", out_dir=tmp_path)
    with pytest.raises(BenchResultsError):
        write_results("demo", {"goals": [{"name": "g"}]}, mode="full", out_dir=tmp_path)
    with pytest.raises(BenchResultsError):
        write_results("demo", {"fingerprint": {}}, mode="full", out_dir=tmp_path)


def test_goal_carries_its_interval() -> None:
    ci = ratio_ci([2.0, 2.2, 1.8], [1.0, 1.1, 0.9])
    g = goal("speed-up", ci["median"], ">= 1.5", ci["median"] >= 1.5, ci=ci)
    assert g["met"] and g["n"] == 3 and g["ci"] == [ci["ci_low"], ci["ci_high"]]
    assert goal("plain", 1, "> 0", True) == {"name": "plain", "value": 1, "target": "> 0", "met": True}
