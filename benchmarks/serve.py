"""Serving latency and throughput: a direct in-process ONNX Runtime call vs medopt's KServe server, interleaved.

    python benchmarks/serve.py [--quick | --smoke] [--model mobilenetv2_100] [--threads N] [--requests N]
                               [--repeats N]

A 224x224 RGB model (untrained weights: latency does not depend on them) is exported to ONNX and stored in a temporary
local store; two servers serve it, one with dynamic batching (max batch 16) and one without (max batch 1), both up for
the whole run. Measured, closed loop, all on 127.0.0.1, in blocks of ``--requests`` requests per arm, the arms run
round-robin with the order rotated each repeat (``medopt.bench.interleaved``), so the direct call and the server
calls see the same machine state (timed once up front, the direct call drifted 0.75 ms within one run):
(a) concurrency 1: the direct ORT call at batch 1, and the batching server over V1 REST (JSON instances), V2 REST with
the binary tensor extension and V2 gRPC: each block's p50; the server overhead is the paired difference of the
block p50s (server - direct) with a 95% bootstrap CI;
(b) concurrency 16: both servers over the three protocols, each block's throughput; batched / unbatched is a paired
ratio with a CI; (c) ORT ms per image at batch 1, 4 and 16 (the most batching could gain on this CPU) and kserve
0.21's list-based V2 binary decoding vs medopt's numpy decoding, both interleaved too.
Request bodies are encoded once up front, so client-side encoding is not in the numbers.
Goals (issue 6), every one reported met or missed, judged on the medians: server overhead over the direct call
<= 3 ms p50 at concurrency 1 for V2 binary and gRPC; dynamic batching at concurrency 16 >= 1.5x the throughput of
unbatched serving. --smoke: tiny_cnn at 32 px, a few requests, 2 repeats (checks the script runs).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from _common import REPO, LoadMonitor, add_mode_flags, goal, mode_of, print_table, write_results

NAME = "bench"
COLUMNS = ["server", "protocol", "concurrency", "requests", "p50_ms", "p50_ci", "p99_ms", "throughput_rps"]
PROTOCOLS = ("v1-rest", "v2-binary", "v2-grpc")
SERVERS = {"batched": 16, "unbatched": 1}
SETTLE_S = 0.05  # ORT/OpenMP worker threads spin after a call; a pause keeps them off the next arm's cores
Caller = Callable[[], Callable[[], None]]


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_mode_flags(p)
    p.add_argument("--model", default=None, help="registry name of the model (default mobilenetv2_100; smoke tiny_cnn)")
    p.add_argument("--size", type=int, default=None, help="input side (default 224; smoke 32)")
    p.add_argument("--threads", type=int, default=None, help="ORT intra-op threads, direct and server (default all)")
    p.add_argument("--requests", type=int, default=None,
                   help="requests per block at concurrency 1, twice that at 16 (default 100; quick 30; smoke 8)")
    p.add_argument("--repeats", type=int, default=None, help="blocks per arm (default 5; smoke 2)")
    p.add_argument("--time-limit", type=float, default=30.0, help="seconds per block at most")
    args = p.parse_args()
    for flag in ("size", "requests", "repeats"):
        value = getattr(args, flag)
        if value is not None and value < (8 if flag == "size" else 1):
            p.error(f"--{flag} must be >= {8 if flag == 'size' else 1}, got {value}")
    mode = mode_of(args)
    args.model = args.model or ("tiny_cnn" if mode == "smoke" else "mobilenetv2_100")
    args.size = args.size or (32 if mode == "smoke" else 224)
    args.requests = args.requests or {"full": 100, "quick": 30, "smoke": 8}[mode]
    args.repeats = args.repeats or (2 if mode == "smoke" else 5)
    return args


def _store_model(args: argparse.Namespace, work: Path) -> tuple[Any, Path]:
    """Build, save and export the model into a local store, as the train and compress stages would."""
    import torch

    from medopt.compress.export import export_onnx
    from medopt.config import ExperimentConfig, ModelConfig, PreprocessConfig
    from medopt.models import create_model
    from medopt.models.geometry import ModelGeometry
    from medopt.models.model_file import save_model_file
    from medopt.store import LocalStore

    torch.manual_seed(0)
    pre = PreprocessConfig(image_size=args.size, normalize="meanstd", mean=(0.485, 0.456, 0.406),
                           std=(0.229, 0.224, 0.225))
    mcfg = ModelConfig(name=args.model)
    model = create_model(mcfg, in_chans=3, num_classes=2, input_size=args.size).eval()
    save_model_file(work / "model.pt", model, model_config=mcfg, preprocess=pre,
                    geometry=ModelGeometry.for_preprocess(pre, in_chans=3, class_names=("normal", "abnormal"),
                                                          task="binary"))
    onnx = export_onnx(model, work / "model.onnx", input_shape=(3, args.size, args.size), opset=17)
    store = LocalStore(work / "store")
    provenance = ExperimentConfig().model_dump(mode="json")
    store.put_file("bench/train/model.pt", work / "model.pt", kind="model/pytorch", config=provenance)
    store.put_file("bench/onnx/model.onnx", onnx, kind="model/onnx", config=provenance, parents=["bench/train/model.pt"])
    return store, onnx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _launch(work: Path, threads: int | None, max_batch: int) -> tuple[subprocess.Popen, str, str]:
    import yaml

    http, grpc = _free_port(), _free_port()
    serve = {"model_name": NAME, "max_batch_size": max_batch, "max_latency_ms": 2.0, "threads": threads}
    cfg = work / f"serve-{max_batch}.yaml"
    cfg.write_text(yaml.safe_dump({"store": {"root": str(work / "store")}, "serve": serve}))
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "medopt.serve", "--artifact", "bench/onnx/model.onnx", "--config",
                             str(cfg), "--port", str(http), "--grpc-port", str(grpc)], env=env, cwd=work,
                            stdout=subprocess.DEVNULL, stderr=open(work / f"server-{max_batch}.log", "wb"))
    return proc, f"http://127.0.0.1:{http}", f"127.0.0.1:{grpc}"


def _wait_ready(proc: subprocess.Popen, url: str, log: Path, timeout: float = 180) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{url}/v2/models/{NAME}/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"server did not become ready; see {log}")


def _start_servers(work: Path, threads: int | None) -> dict[str, tuple[subprocess.Popen, str, str]]:
    """Both servers start at once (their start-up overlaps) and stay up, so their calls can be interleaved."""
    servers: dict[str, tuple[subprocess.Popen, str, str]] = {}
    try:
        for label, max_batch in SERVERS.items():
            servers[label] = _launch(work, threads, max_batch)
        for label, (proc, url, _) in servers.items():
            _wait_ready(proc, url, work / f"server-{SERVERS[label]}.log")
    except BaseException:
        _stop_servers(servers)
        raise
    return servers


def _stop_servers(servers: dict[str, tuple[subprocess.Popen, str, str]]) -> None:
    for proc, _, _ in servers.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc, _, _ in servers.values():
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def _block(calls: list[Callable[[], None]], n: int, limit: float) -> dict[str, Any]:
    """One block: ``len(calls)`` closed-loop workers, each with its own connection, ``n`` requests in total."""
    concurrency = len(calls)
    per_worker = max(1, n // concurrency)
    time.sleep(SETTLE_S)
    deadline = time.monotonic() + limit

    def worker(call: Callable[[], None]) -> list[float]:
        out = []
        for _ in range(per_worker):
            if time.monotonic() > deadline:
                break
            t0 = time.perf_counter()
            call()
            out.append((time.perf_counter() - t0) * 1000)
        return out

    start = time.perf_counter()
    if concurrency == 1:
        lat = np.asarray(worker(calls[0]))
    else:
        with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
            lat = np.concatenate([np.asarray(v) for v in pool.map(worker, calls)])
    wall = time.perf_counter() - start
    return {"requests": int(lat.size), "p50_ms": float(np.percentile(lat, 50)),
            "p99_ms": float(np.percentile(lat, 99)), "throughput_rps": float(lat.size / wall)}


def _callers(url: str, grpc_addr: str, x: np.ndarray) -> dict[str, Caller]:
    """Per-protocol factories of one-request callables (one connection each); bodies are encoded once here."""
    import grpc
    import httpx
    import orjson
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

    from medopt.serve.binary import encode_binary_request

    v1_body = orjson.dumps({"instances": x.tolist()}, option=orjson.OPT_SERIALIZE_NUMPY)
    v2_body, n = encode_binary_request(x)
    v2_headers = {"Inference-Header-Content-Length": str(n), "Content-Type": "application/octet-stream"}
    request = pb.ModelInferRequest(model_name=NAME, inputs=[
        pb.ModelInferRequest.InferInputTensor(name="input", datatype="FP32", shape=list(x.shape))])
    request.raw_input_contents.append(x.tobytes())

    def http(path: str, body: bytes, headers: dict[str, str]) -> Caller:
        def make() -> Callable[[], None]:
            client = httpx.Client(base_url=url, timeout=60)
            return lambda: client.post(path, content=body, headers=headers).raise_for_status()
        return make

    def grpc_make() -> Callable[[], None]:
        stub = pb_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(grpc_addr))
        return lambda: stub.ModelInfer(request, timeout=60)

    return {"v1-rest": http(f"/v1/models/{NAME}:predict", v1_body, {"Content-Type": "application/json"}),
            "v2-binary": http(f"/v2/models/{NAME}/infer", v2_body, v2_headers), "v2-grpc": grpc_make}


def _arm(make: Caller, concurrency: int, n: int, limit: float, metric: str,
         blocks: list[dict[str, Any]]) -> Callable[[], float]:
    """An arm of ``concurrency`` persistent connections: each call runs one block and returns its ``metric``."""
    calls = [make() for _ in range(concurrency)]
    for call in calls:
        call()  # connection set-up, not timed

    def run() -> float:
        blocks.append(_block(calls, n, limit))
        return blocks[-1][metric]

    return run


def _measure(args: argparse.Namespace, onnx: Path, servers: dict[str, tuple[subprocess.Popen, str, str]],
             x: np.ndarray) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, list[dict[str, Any]]]]:
    """Concurrency 1 (p50 per block) and concurrency 16 (throughput per block), each set interleaved."""
    from medopt.bench import interleaved
    from medopt.serve.artifact import onnx_runner

    run = onnx_runner(onnx, args.threads)
    blocks: dict[str, list[dict[str, Any]]] = {}
    callers = {label: _callers(url, grpc, x) for label, (_, url, grpc) in servers.items()}
    single = {"direct-ort": _arm(lambda: lambda: run(x), 1, args.requests, args.time_limit, "p50_ms",
                                 blocks.setdefault("in-process/direct-ort/1", []))}
    for protocol, make in callers["batched"].items():
        single[protocol] = _arm(make, 1, args.requests, args.time_limit, "p50_ms",
                                blocks.setdefault(f"batched/{protocol}/1", []))
    p50 = interleaved(single, repeats=args.repeats, warmup=1)
    many = {}
    for label in SERVERS:
        for protocol, make in callers[label].items():
            many[f"{label}/{protocol}"] = _arm(make, 16, 2 * args.requests, args.time_limit, "throughput_rps",
                                               blocks.setdefault(f"{label}/{protocol}/16", []))
    rps = interleaved(many, repeats=args.repeats, warmup=1)
    for series in blocks.values():
        del series[0]  # the warm-up block
    return p50, rps, blocks


def _rows(blocks: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    from medopt.bench import median_ci

    rows = []
    for key, series in blocks.items():
        server, protocol, conc = key.split("/")
        ci = median_ci([b["p50_ms"] for b in series])
        rows.append({"server": server, "protocol": protocol, "concurrency": int(conc), "blocks": len(series),
                     "requests": sum(b["requests"] for b in series), "p50_ms": ci["median"],
                     "p50_ci": [ci["ci_low"], ci["ci_high"]],
                     "p99_ms": statistics.median(b["p99_ms"] for b in series),
                     "throughput_rps": statistics.median(b["throughput_rps"] for b in series)})
    return rows


def _batch_scaling(onnx: Path, threads: int | None, size: int, reps: int, repeats: int) -> dict[str, Any]:
    """ORT ms per image at batch 1, 4 and 16 (interleaved): the most any batching server could gain on this CPU."""
    from medopt.bench import interleaved, ratio_ci
    from medopt.serve.artifact import onnx_runner

    run = onnx_runner(onnx, threads)

    def arm(batch: int) -> Callable[[], float]:
        xb = np.random.default_rng(batch).standard_normal((batch, 3, size, size)).astype(np.float32)

        def timed() -> float:
            time.sleep(SETTLE_S)
            t = []
            for _ in range(reps):
                t0 = time.perf_counter()
                run(xb)
                t.append((time.perf_counter() - t0) * 1000)
            return float(np.median(t)) / batch
        return timed

    samples = interleaved({f"batch_{b}": arm(b) for b in (1, 4, 16)}, repeats=repeats, warmup=1)
    out: dict[str, Any] = {f"{k}_ms_per_image": float(np.median(v)) for k, v in samples.items()}
    out["max_batching_gain"] = ratio_ci(samples["batch_1"], samples["batch_16"])
    out["samples"] = samples
    return out


def _decode_compare(x: np.ndarray, reps: int, repeats: int) -> dict[str, Any]:
    """ms per image: kserve's list-based binary decoding vs medopt's numpy decoding of the same body (interleaved)."""
    from medopt.bench import interleaved, ratio_ci
    from medopt.serve.binary import decode_binary_request, encode_binary_request, kserve_list_decode

    body, n = encode_binary_request(x)

    def arm(fn: Callable[[], Any]) -> Callable[[], float]:
        def timed() -> float:
            t = []
            for _ in range(reps):
                t0 = time.perf_counter()
                fn()
                t.append((time.perf_counter() - t0) * 1000)
            return float(np.median(t)) / x.shape[0]
        return timed

    samples = interleaved({"kserve_list_ms": arm(lambda: kserve_list_decode(body, n, NAME)),
                           "medopt_numpy_ms": arm(lambda: decode_binary_request(body, n, NAME).inputs[0].as_numpy())},
                          repeats=repeats, warmup=1)
    out: dict[str, Any] = {k: float(np.median(v)) for k, v in samples.items()}
    out["speedup"] = ratio_ci(samples["kserve_list_ms"], samples["medopt_numpy_ms"])
    return out


def _goals(p50: dict[str, list[float]], rps: dict[str, list[float]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every goal, met or missed, on the medians; the paired CIs beside them."""
    from medopt.bench import difference_ci, ratio_ci

    stats: dict[str, Any] = {"overhead_ms": {}, "batching_ratio": {}}
    out = []
    for protocol in ("v2-binary", "v2-grpc"):
        ci = difference_ci(p50[protocol], p50["direct-ort"], paired=True)
        stats["overhead_ms"][protocol] = ci
        out.append(goal(f"{protocol} p50 overhead over direct ORT at concurrency 1 (ms)", ci["median"], "<= 3",
                        ci["median"] <= 3.0, ci=ci))
    stats["overhead_ms"]["v1-rest"] = difference_ci(p50["v1-rest"], p50["direct-ort"], paired=True)
    for protocol in PROTOCOLS:
        stats["batching_ratio"][protocol] = ratio_ci(rps[f"batched/{protocol}"], rps[f"unbatched/{protocol}"])
    for protocol in ("v2-binary", "v2-grpc"):
        ci = stats["batching_ratio"][protocol]
        out.append(goal(f"{protocol} throughput at concurrency 16, batched / unbatched", ci["median"], ">= 1.5",
                        ci["median"] >= 1.5, ci=ci))
    return out, stats


def main() -> int:
    args = _args()
    mode = mode_of(args)
    reps = {"full": 20, "quick": 5, "smoke": 2}[mode]
    x = np.random.default_rng(0).standard_normal((1, 3, args.size, args.size)).astype(np.float32)
    started = time.perf_counter()
    with LoadMonitor(own_load=2) as monitor, tempfile.TemporaryDirectory(prefix="medopt-bench-serve-") as tmp:
        work = Path(tmp)
        _, onnx = _store_model(args, work)
        t0 = time.perf_counter()
        servers = _start_servers(work, args.threads)
        server_start = time.perf_counter() - t0
        print(f"model stored at {t0 - started:.1f} s; both servers ready {server_start:.1f} s later")
        try:
            p50, rps, blocks = _measure(args, onnx, servers, x)
        finally:
            _stop_servers(servers)
        scaling = _batch_scaling(onnx, args.threads, args.size, reps, args.repeats)
        decode = _decode_compare(x, reps, args.repeats)
    rows = _rows(blocks)
    goals, stats = _goals(p50, rps)
    print_table(rows, COLUMNS)
    print(f"V2 binary decode per {args.size}x{args.size} image: kserve lists {decode['kserve_list_ms']:.2f} ms, "
          f"numpy {decode['medopt_numpy_ms']:.3f} ms ({decode['speedup']['median']:.0f}x)")
    print(f"ORT ms per image at batch 1/4/16: {scaling['batch_1_ms_per_image']:.2f} / "
          f"{scaling['batch_4_ms_per_image']:.2f} / {scaling['batch_16_ms_per_image']:.2f} -> the most batching can "
          f"gain on this CPU is {scaling['max_batching_gain']['median']:.2f}x")
    for g in goals:
        print(f"goal {'met' if g['met'] else 'MISSED'}: {g['name']} = {g['value']:.2f} (paired median of {g['n']} "
              f"blocks, 95% CI {g['ci'][0]:.2f}..{g['ci'][1]:.2f}; target {g['target']})")
    load = monitor.summary()
    print(f"load before {load['load_before'][0]:.1f}, during (median) {load['load_during_median']:.1f} on "
          f"{load['cores']} cores; loaded: {load['loaded']}")
    wall = time.perf_counter() - started
    path = write_results("serve", {
        "args": vars(args), "weights": "untrained (latency only)", "repeats": args.repeats,
        "server_start_seconds": server_start,
        "requests_per_block": args.requests, "rows": rows, **stats, "samples": {"p50_ms": p50, "throughput_rps": rps},
        "binary_decode": decode, "ort_batch_scaling": scaling, "goals": goals, "wall_seconds": wall,
    }, mode=mode, load=load)
    print(f"results: {path} ({wall:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
