"""Shared test set-up: small thread budget, the shared data folder by path, the parallel schedule."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
PNEUMONIA_NPZ = SHARED / "data" / "pneumoniamnist.npz"

torch.set_num_threads(1)

# The real S3 server (SeaweedFS) fixtures, shared by the store and pipeline tests.
from s3_server import S3Server, s3_env, s3_server  # noqa: E402,F401


# Test files that run one long job per test (a subprocess each, no shared fixtures): spread their tests over the
# workers one by one. Every other file's tests stay on one worker, so a module-scoped server or Ray session starts
# once. The longest files go first so that no worker is left with a long file at the end.
SPREAD_PER_TEST = ("tests/test_benchmarks_smoke.py",)
# Tests that start several replica processes under CPU quotas and time them: one worker runs them one after another,
# so that they never starve each other's cold starts (the other worker's load is still there).
REPLICA_GROUP = ("tests/bench/scaling/test_realrun.py", "tests/test_benchmarks_smoke.py::test_benchmark_smoke_run[autoscale.py]",
                 "tests/test_benchmarks_smoke.py::test_benchmark_smoke_run[regime.py]")
LONG_FIRST = ("tests/bench/scaling/test_realrun.py", "tests/test_benchmarks_smoke.py", "tests/train/test_ray_trainer.py", "tests/pipeline/",
              "tests/federate/test_fed_simulation.py", "tests/compress/", "tests/serve/")


@pytest.hookimpl(tryfirst=True)  # before xdist's worker hook reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Group tests for ``pytest -n 2 --dist loadgroup`` (``make test``): one group per file, long files first."""
    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::")[0]
        return next((i for i, prefix in enumerate(LONG_FIRST) if path.startswith(prefix)), len(LONG_FIRST))

    for item in items:
        path = item.nodeid.split("::")[0]
        if any(item.nodeid.startswith(prefix) for prefix in REPLICA_GROUP):
            group = "replica-processes"
        else:
            group = item.nodeid if path in SPREAD_PER_TEST else path
        item.add_marker(pytest.mark.xdist_group(group))
    items.sort(key=rank)  # stable: the order inside each file is kept


@pytest.fixture
def pneumonia_npz() -> Path:
    if not PNEUMONIA_NPZ.is_file():
        pytest.skip(f"real PneumoniaMNIST not found at {PNEUMONIA_NPZ}")
    return PNEUMONIA_NPZ
