"""Placement nodes, the split planner and the bench stage's building blocks on a tiny stored model."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serve"))
from serve_fixtures import MODEL_KEY, stored  # noqa: E402,F401

from medopt.bench.hybrid import Topology, _plan, _predict_all, held_out, reference_labels  # noqa: E402
from medopt.bench.node import Forward  # noqa: E402
from medopt.bench.splitplan import LinkRates, SplitTiming, candidates, choose_split, time_splits  # noqa: E402
from medopt.bench.stage import prepare_models  # noqa: E402


def _timing(at: str, edge: float, cloud: float, nbytes: int) -> SplitTiming:
    return SplitTiming(at, edge, cloud, (1,), {"none": nbytes * 4, "fp16": nbytes * 2, "int8": nbytes + 8})


def test_planner_trades_edge_compute_for_link_bytes() -> None:
    timings = [_timing("early", 1.0, 9.0, 100_000), _timing("late", 8.0, 1.0, 1_000)]
    slow = LinkRates(rtt_ms=100.0, uplink_mbit=1.0, downlink_mbit=8.0)
    cands = candidates(timings, slow, image_bytes=20_000, response_bytes=100, whole_edge_ms=10.0,
                       whole_cloud_ms=10.0, edge_slowdown=2.0)
    best = choose_split(cands)
    # late/int8: 8*2 + 100 + 1008*8/1e6*1000 + 1 + 0.1 = 125.164 ms; cloud-only: 100 + 160 + 10 + 0.1
    assert (best.at, best.codec) == ("late", "int8")
    assert best.predicted_ms == pytest.approx(16 + 100 + 8.064 + 1 + 0.1, abs=1e-6)
    cloud = next(c for c in cands if c.placement == "cloud")
    assert cloud.predicted_ms == pytest.approx(100 + 160 + 10 + 0.1, abs=1e-6)
    fast = LinkRates(rtt_ms=0.5, uplink_mbit=1000.0, downlink_mbit=1000.0)
    ranked = candidates(timings, fast, image_bytes=20_000, response_bytes=100, whole_edge_ms=10.0,
                        whole_cloud_ms=10.0, edge_slowdown=2.0)
    assert ranked[0].placement == "cloud"          # a fast link: nothing beats sending the image


@pytest.fixture(scope="module")
def models(stored, tmp_path_factory):  # noqa: F811
    return prepare_models(stored.store, model_key=MODEL_KEY, compressed_key=None,
                          workdir=tmp_path_factory.mktemp("bench-models"))


def test_split_timings_cover_every_split_point(models, tmp_path: Path) -> None:
    timings = time_splits(models.torch_model, models.input_shape, tmp_path, repeats=3)
    assert len(timings) >= 3 and all(t.edge_ms > 0 and t.cloud_ms > 0 for t in timings)
    assert all(t.wire_bytes["int8"] < t.wire_bytes["none"] for t in timings)


@pytest.mark.slow
def test_edge_split_and_jpeg_placements_agree_with_the_whole_model(models, tmp_path: Path) -> None:
    from medopt.bench.hybrid import _split_files

    rng = np.random.default_rng(0)
    data = held_out(rng.integers(0, 256, size=(12, 20, 20), dtype=np.uint8), np.zeros(12, dtype=np.int64), 12)
    reference = reference_labels(models, data)
    at = time_splits(models.torch_model, models.input_shape, tmp_path / "t", repeats=1)[1].at
    edge_file, cloud_file, shape, codec = _split_files(models, at, "none", tmp_path)
    with contextlib.ExitStack() as stack:
        topo = Topology(stack, tmp_path)
        edge_only = topo.node(_plan("edge", models, model=str(models.optimized), slowdown=2.0))
        cloud = topo.node(_plan("split-cloud", models, accepts="intermediate", model=str(cloud_file),
                                intermediate_shape=list(shape), codec=codec))
        split = topo.node(_plan("split-edge", models, model=str(edge_file), codec=codec,
                                forward=Forward(url=cloud, send="intermediate")))
        whole = topo.node(_plan("cloud", models, model=str(models.fp32)))
        jpeg = topo.node(_plan("jpeg-edge", models, forward=Forward(url=whole, send="jpeg", jpeg_quality=95)))
        for url in (edge_only, split):
            assert (_predict_all(url, data, 10.0) == reference).all()
        assert np.mean(_predict_all(jpeg, data, 10.0) == reference) >= 0.5
        import httpx

        bad = httpx.post(split + "/infer", content=b"not an image")
        assert bad.status_code == 400 and "decodable" in bad.json()["error"]


@pytest.mark.slow
def test_sigterm_during_a_bench_removes_every_node(models, tmp_path: Path) -> None:
    import subprocess
    import time

    import psutil

    script = f"""
import contextlib, sys, time
from pathlib import Path
from medopt.bench.hybrid import Topology, _plan, Models
from medopt.bench.processes import terminate_on_sigterm
m = Models(fp32=Path({str(models.fp32)!r}), optimized=Path({str(models.fp32)!r}), optimized_label='x',
           described_by={models.described_by!r}, store_root={models.store_root!r}, input_shape=(1, 16, 16),
           torch_model=None)
with terminate_on_sigterm(), contextlib.ExitStack() as stack:
    topo = Topology(stack, Path({str(tmp_path)!r}))
    print(topo.node(_plan('a', m, model=str(m.fp32))), flush=True)
    time.sleep(120)
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    url = proc.stdout.readline().strip()
    assert url.startswith("http://127.0.0.1:")
    nodes = [c for c in psutil.Process(proc.pid).children(recursive=True)]
    assert nodes, "the node process was not started"
    proc.terminate()
    assert proc.wait(timeout=30) != 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(n.is_running() and n.status() != psutil.STATUS_ZOMBIE for n in nodes):
        time.sleep(0.1)
    assert not any(n.is_running() and n.status() != psutil.STATUS_ZOMBIE for n in nodes)
