"""The bench stage: placements (cloud fp32, cloud optimized, edge, split, cloud JPEG) timed over emulated links.

For each link profile: the split point and codec are chosen Neurosurgeon-style from measured per-split latencies and
bytes (``splitplan``); every placement is built from placement nodes (``node``) with the link (a userspace link
proxy, ``links``) between edge and cloud; held-out test images go through each placement once to check its
predictions against the whole fp32 model; then open-loop Poisson load (``loadgen``, its own process) is sent to each
placement's edge endpoint in short windows, interleaved round-robin with the order rotated (``harness``), and the
per-window mean and p99 response times give medians with bootstrap CIs and paired ratios against cloud-only.

Everything started here is stopped when the stage returns or fails (``processes``).
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medopt.bench.harness import median_ci, ratio_ci, round_robin
from medopt.bench.loadgen import LoadSpec, Target, run_load
from medopt.bench.node import Forward, NodePlan
from medopt.bench.processes import Announcing, terminate_on_sigterm
from medopt.bench.splitplan import (
    Candidate, LinkRates, SplitTiming, candidates, choose_split, median_latency_ms, plan_table, time_splits,
)
from medopt.config import BenchConfig
from medopt.errors import MedoptError


class BenchError(MedoptError, ValueError):
    """The bench stage cannot run as configured (unknown link profile, split layer, missing model)."""


@dataclass(frozen=True)
class Models:
    """The files the placements run, and the stored model that describes their input."""

    fp32: Path
    optimized: Path
    optimized_label: str
    described_by: str
    store_root: str
    input_shape: tuple[int, int, int]
    torch_model: Any


@dataclass(frozen=True)
class HeldOut:
    """Test images as PNG files (what an edge device sends) and their labels."""

    pngs: list[bytes]
    labels: np.ndarray


def png_bytes(image: np.ndarray) -> bytes:
    """One uint8 (H,W) or (H,W,C) image as a PNG file."""
    from PIL import Image

    out = io.BytesIO()
    arr = image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image
    Image.fromarray(arr).save(out, format="PNG")
    return out.getvalue()


def held_out(images: np.ndarray, labels: np.ndarray, n: int) -> HeldOut:
    """The first ``n`` test images (a fixed, seed-free choice) as PNGs."""
    k = min(n, len(images))
    return HeldOut([png_bytes(images[i]) for i in range(k)], np.asarray(labels[:k]))


class Topology:
    """The running processes of the placements over one link; every one is stopped when ``stack`` closes."""

    def __init__(self, stack: contextlib.ExitStack, workdir: Path) -> None:
        self.stack, self.workdir = stack, workdir
        self._n = 0

    def nodes(self, plans: list[NodePlan]) -> list[str]:
        """Start the nodes in parallel; their base URLs in order."""
        started = []
        for plan in plans:
            self._n += 1
            path = self.workdir / f"node-{self._n}-{plan.name}.json"
            path.write_text(plan.model_dump_json())
            child_ = Announcing(["medopt.bench.node", str(path)], f"bench node {plan.name}")
            self.stack.callback(child_.stop)
            started.append(child_)
        return [f"http://127.0.0.1:{c.wait_port(120.0)}" for c in started]

    def node(self, plan: NodePlan) -> str:
        """Start one node; returns its base URL."""
        return self.nodes([plan])[0]

    def link(self, profile: Any, upstream_url: str) -> str:
        """A link proxy from the edge to ``upstream_url``; returns the URL the edge sends to."""
        from medopt.bench.links.launch import run_proxy

        host_port = upstream_url.removeprefix("http://")
        address = self.stack.enter_context(run_proxy(profile, host_port))
        return f"http://{address}"


def _plan(name: str, models: Models, **kw: Any) -> NodePlan:
    return NodePlan(name=name, store_root=models.store_root, described_by=models.described_by, **kw)


SplitFiles = tuple[Path, Path, tuple[int, ...], str]


def _cloud_plan(placement: str, models: Models, cfg: BenchConfig, split: SplitFiles | None) -> NodePlan | None:
    """The cloud-side node of ``placement`` (None for edge-only)."""
    if placement == "edge-optimized":
        return None
    if placement == "split":
        assert split is not None
        _, cloud_file, shape, codec = split
        return _plan("split-cloud", models, accepts="intermediate", model=str(cloud_file),
                     intermediate_shape=list(shape), codec=codec, threads=cfg.cloud_threads)
    model = models.optimized if placement == "cloud-optimized" else models.fp32
    return _plan(f"{placement}-cloud", models, model=str(model), threads=cfg.cloud_threads)


def _edge_plan(placement: str, models: Models, cfg: BenchConfig, split: SplitFiles | None,
               via: str | None) -> NodePlan:
    """The edge-side node of ``placement``, sending through the link at ``via`` (None for edge-only)."""
    edge_kw: dict[str, Any] = {"threads": cfg.edge_threads, "slowdown": cfg.edge_slowdown}
    if placement == "edge-optimized":
        return _plan("edge-optimized", models, model=str(models.optimized), **edge_kw)
    assert via is not None
    if placement == "split":
        assert split is not None
        edge_file, _, _, codec = split
        return _plan("split-edge", models, model=str(edge_file), codec=codec,
                     forward=Forward(url=via, send="intermediate", timeout_s=cfg.timeout_s), **edge_kw)
    send = "jpeg" if placement == "cloud-jpeg" else "image"
    return _plan(f"{placement}-edge", models, forward=Forward(url=via, send=send, jpeg_quality=cfg.jpeg_quality,
                                                             timeout_s=cfg.timeout_s), **edge_kw)


def build_placements(topo: Topology, profile: Any, models: Models, cfg: BenchConfig,
                     split: SplitFiles | None) -> dict[str, str]:
    """Start every placement (cloud nodes, then the links, then the edge nodes); placement -> edge URL."""
    clouds = {p: plan for p in cfg.placements if (plan := _cloud_plan(p, models, cfg, split)) is not None}
    cloud_urls = dict(zip(clouds, topo.nodes(list(clouds.values()))))
    vias = {p: topo.link(profile, url) for p, url in cloud_urls.items()}
    edges = [_edge_plan(p, models, cfg, split, vias.get(p)) for p in cfg.placements]
    return dict(zip(cfg.placements, topo.nodes(edges)))


def _predict_all(url: str, data: HeldOut, timeout_s: float) -> np.ndarray:
    import httpx

    labels = []
    with httpx.Client(timeout=timeout_s) as client:
        for png in data.pngs:
            response = client.post(url + "/infer", content=png, headers={"Content-Type": "image/png"})
            if response.status_code != 200:
                raise BenchError(f"placement at {url} answered {response.status_code}: {response.text[:200]}")
            labels.append(int(response.json()["label"]))
    return np.asarray(labels)


def reference_labels(models: Models, data: HeldOut) -> np.ndarray:
    """The whole fp32 model's predictions on the held-out PNGs, decoded as the nodes decode them."""
    from medopt.serve.artifact import describe_model, onnx_runner
    from medopt.serve.codec import decode_images
    from medopt.store import LocalStore

    with tempfile.TemporaryDirectory() as tmp:
        spec, _ = describe_model(LocalStore(models.store_root), models.described_by, name="ref", max_rows=1,
                                 workdir=Path(tmp))
    run = onnx_runner(models.fp32, 1)
    return np.asarray([int(run(decode_images([png], spec))[0].argmax()) for png in data.pngs])


def _window(url: str, cfg: BenchConfig, payload: Path, seed: int) -> dict[str, Any]:
    spec = LoadSpec(target=Target(url=url, protocol="raw", payload_file=str(payload), timeout_s=cfg.timeout_s),
                    mode="open", arrival={"kind": "poisson", "rate": cfg.rate_rps, "duration_s": cfg.window_s,
                                          "seed": seed},
                    window_s=cfg.window_s, drain_s=max(5.0, cfg.timeout_s), warmup_requests=2)
    return run_load(spec)


def _link_rates(profile: Any) -> LinkRates:
    return LinkRates(rtt_ms=float(profile.rtt_ms), uplink_mbit=float(profile.uplink),
                     downlink_mbit=float(profile.downlink))


def choose_for_link(cfg: BenchConfig, timings: list[SplitTiming], profile: Any, *, image_bytes: int,
                    whole_edge_ms: float, whole_cloud_ms: float) -> tuple[Candidate, dict[str, Any]]:
    """The split used over ``profile`` (``cfg.split_at``/``cfg.codec`` when set) and the table behind the choice."""
    codecs = ("none", "fp16", "int8") if cfg.codec == "auto" else (cfg.codec,)
    cands = candidates(timings, _link_rates(profile), image_bytes=image_bytes, response_bytes=64,
                       whole_edge_ms=whole_edge_ms, whole_cloud_ms=whole_cloud_ms,
                       edge_slowdown=cfg.edge_slowdown, codecs=codecs)
    if cfg.split_at is not None:
        names = [t.at for t in timings]
        if cfg.split_at not in names:
            raise BenchError(f"bench.split_at {cfg.split_at!r} is not a layer of this model; valid: {', '.join(names)}")
        cands_at = [c for c in cands if c.at == cfg.split_at]
        chosen = min(cands_at, key=lambda c: c.predicted_ms)
    else:
        chosen = choose_split(cands)
    return chosen, plan_table(timings, cands, chosen)


def _split_files(models: Models, at: str, codec: str, workdir: Path) -> SplitFiles:
    from medopt.serve.split import export_split_onnx, split_model

    split = split_model(models.torch_model, at, input_shape=models.input_shape, codec=codec)
    files = export_split_onnx(split, workdir / f"split-{at.replace('.', '_')}-{codec}")
    return files.edge, files.cloud, tuple(split.intermediate_shape), codec


def _summaries(windows: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for placement, runs in windows.items():
        means = [r["latency"]["mean_ms"] for r in runs if r["latency"]["mean_ms"] is not None]
        p99s = [r["latency"]["p99_ms"] for r in runs if r["latency"]["p99_ms"] is not None]
        errors: dict[str, int] = {}
        for r in runs:
            for k, v in r["errors"].items():
                errors[k] = errors.get(k, 0) + v
        out[placement] = {
            "mean_ms": median_ci(means) if means else None, "p99_ms": median_ci(p99s) if p99s else None,
            "window_means_ms": means, "window_p99_ms": p99s, "errors": errors,
            "requests": sum(r["requests"] for r in runs), "achieved_rps": [r["achieved_rps"] for r in runs],
            "bytes_in_per_request": runs[0]["bytes_in"] / max(1, runs[0]["ok"]) if runs else None,
        }
    return out


def _versus(summary: dict[str, Any], windows: dict[str, list[dict[str, Any]]], a: str, b: str) -> dict[str, Any]:
    """Reduction of ``a`` against ``b`` (1 - a/b) in mean and p99, with paired bootstrap CIs over windows."""
    out: dict[str, Any] = {}
    for key in ("mean_ms", "p99_ms"):
        sa, sb = summary[a][f"window_{'means' if key == 'mean_ms' else 'p99'}_ms"], \
            summary[b][f"window_{'means' if key == 'mean_ms' else 'p99'}_ms"]
        if len(sa) != len(sb) or not sa:
            out[key] = None
            continue
        r = ratio_ci(sa, sb)
        out[key] = {"reduction": 1.0 - r["median"], "ci": [1.0 - r["ci_high"], 1.0 - r["ci_low"]], "n": r["n"]}
    return out


def measure_link(cfg: BenchConfig, profile: Any, models: Models, data: HeldOut, timings: list[SplitTiming],
                 *, whole_edge_ms: float, whole_cloud_ms: float, reference: np.ndarray, workdir: Path
                 ) -> dict[str, Any]:
    """Everything measured over one link profile: the split choice, accuracy per placement, load windows."""
    workdir.mkdir(parents=True, exist_ok=True)
    chosen, table = choose_for_link(cfg, timings, profile, image_bytes=len(data.pngs[0]),
                                    whole_edge_ms=whole_edge_ms, whole_cloud_ms=whole_cloud_ms)
    split = _split_files(models, str(chosen.at), str(chosen.codec), workdir) if "split" in cfg.placements else None
    payload = workdir / "payload.png"
    payload.write_bytes(data.pngs[0])
    windows: dict[str, list[dict[str, Any]]] = {p: [] for p in cfg.placements}
    accuracy: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        topo = Topology(stack, workdir)
        urls = build_placements(topo, profile, models, cfg, split)
        for placement, url in urls.items():
            labels = _predict_all(url, data, cfg.timeout_s)
            accuracy[placement] = {"agreement_with_fp32": float(np.mean(labels == reference)),
                                   "accuracy": float(np.mean(labels == data.labels)), "n": int(len(labels))}
        for repeat, placement in round_robin(list(cfg.placements), cfg.repeats):
            windows[placement].append(_window(urls[placement], cfg, payload, seed=repeat))
    summary = _summaries(windows)
    out: dict[str, Any] = {"profile": profile.model_dump(), "split_plan": table, "accuracy": accuracy,
                           "placements": summary,
                           "samples": {p: [r.get("samples", {}).get("latency_ms", []) for r in runs]
                                       for p, runs in windows.items()}}
    if "split" in summary and "cloud-fp32" in summary:
        out["split_vs_cloud_fp32"] = _versus(summary, windows, "split", "cloud-fp32")
    if "split" in summary and "cloud-jpeg" in summary:
        out["split_vs_cloud_jpeg"] = _versus(summary, windows, "split", "cloud-jpeg")
    return out


@contextlib.contextmanager
def _workdir(path: Path | None) -> Iterator[Path]:
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="medopt-bench-") as tmp:
        yield Path(tmp)


def whole_model_ms(path: Path, input_shape: tuple[int, int, int], threads: int, repeats: int = 15) -> float:
    """Median ORT latency (ms) of one whole-model inference at ``threads``."""
    from medopt.compress.export import ort_session

    x = np.random.default_rng(0).standard_normal((1, *input_shape)).astype(np.float32)
    return median_latency_ms(ort_session(path, threads=threads), x, repeats)


def run_hybrid(cfg: BenchConfig, profiles: dict[str, Any], models: Models, data: HeldOut, *,
               workdir: Path | None = None) -> dict[str, Any]:
    """Measure every configured link; the result is JSON-ready (no arrays)."""
    missing = [name for name in cfg.links if name not in profiles]
    if missing:
        raise BenchError(f"unknown link profile(s) {', '.join(missing)}; known: {', '.join(sorted(profiles))}")
    with terminate_on_sigterm(), _workdir(workdir) as wd:
        timings = time_splits(models.torch_model, models.input_shape, wd / "splits",
                              edge_threads=cfg.edge_threads, cloud_threads=cfg.cloud_threads)
        whole_edge = whole_model_ms(models.optimized, models.input_shape, cfg.edge_threads)
        whole_cloud = whole_model_ms(models.fp32, models.input_shape, cfg.cloud_threads)
        reference = reference_labels(models, data)
        links = {name: measure_link(cfg, profiles[name], models, data, timings, whole_edge_ms=whole_edge,
                                    whole_cloud_ms=whole_cloud, reference=reference, workdir=wd / name)
                 for name in cfg.links}
    return {"config": cfg.model_dump(mode="json"), "optimized_model": models.optimized_label,
            "whole_model_ms": {"edge_optimized_1x": whole_edge, "cloud_fp32": whole_cloud}, "links": links}
