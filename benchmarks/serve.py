"""Serving latency and throughput: a direct in-process ONNX Runtime call vs medopt's KServe server.

    python benchmarks/serve.py [--quick] [--model mobilenetv2_100] [--threads N] [--requests N]

A 224x224 RGB model (untrained weights: latency does not depend on them) is exported to ONNX and stored in a temporary
local store. Measured, closed loop, all on 127.0.0.1: (a) the direct ORT call at batch 1; (b) the server over V1 REST
(JSON instances), V2 REST with the binary tensor extension and V2 gRPC, at concurrency 1 and 16, with dynamic batching
(max batch 16) and without (max batch 1); (c) kserve 0.21's list-based V2 binary decoding vs medopt's numpy decoding,
ms per image. Request bodies are encoded once up front, so client-side encoding is not in the numbers.
Goals (issue 6): server overhead over the direct call <= 3 ms p50 at concurrency 1 for V2 binary and gRPC; dynamic
batching at concurrency 16 >= 1.5x the throughput of unbatched serving.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from _common import REPO, goal, print_table, write_results

NAME = "bench"
COLUMNS = ["server", "protocol", "concurrency", "requests", "p50_ms", "p99_ms", "throughput_rps"]


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer requests per setting (same 224 px model)")
    p.add_argument("--model", default="mobilenetv2_100", help="registry name of the 224x224 model")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--threads", type=int, default=None, help="ORT intra-op threads, direct and server (default all)")
    p.add_argument("--requests", type=int, default=None, help="requests per setting (default 300; quick 40)")
    p.add_argument("--time-limit", type=float, default=60.0, help="seconds per setting at most")
    return p.parse_args()


def _store_model(args: argparse.Namespace, work: Path) -> tuple[Any, Path]:
    """Build, save and export the model into a local store, as the train and compress stages would."""
    import torch

    from medopt.compress.export import export_onnx
    from medopt.config import ExperimentConfig, ModelConfig, PreprocessConfig
    from medopt.models import create_model
    from medopt.models.model_file import save_model_file
    from medopt.store import LocalStore

    torch.manual_seed(0)
    pre = PreprocessConfig(image_size=args.size, normalize="meanstd", mean=(0.485, 0.456, 0.406),
                           std=(0.229, 0.224, 0.225))
    mcfg = ModelConfig(name=args.model)
    model = create_model(mcfg, in_chans=3, num_classes=2, input_size=args.size).eval()
    save_model_file(work / "model.pt", model, model_config=mcfg, preprocess=pre, in_chans=3, num_classes=2,
                    input_size=args.size, class_names=("normal", "abnormal"), task="binary")
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


def _start(work: Path, threads: int | None, max_batch: int) -> tuple[subprocess.Popen, str, str]:
    import httpx
    import yaml

    http, grpc = _free_port(), _free_port()
    serve = {"model_name": NAME, "max_batch_size": max_batch, "max_latency_ms": 2.0, "threads": threads}
    cfg = work / f"serve-{max_batch}.yaml"
    cfg.write_text(yaml.safe_dump({"store": {"root": str(work / "store")}, "serve": serve}))
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "medopt.serve", "--artifact", "bench/onnx/model.onnx", "--config",
                             str(cfg), "--port", str(http), "--grpc-port", str(grpc)], env=env, cwd=work,
                            stdout=subprocess.DEVNULL, stderr=open(work / f"server-{max_batch}.log", "wb"))
    url, deadline = f"http://127.0.0.1:{http}", time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{url}/v2/models/{NAME}/ready", timeout=1).status_code == 200:
                return proc, url, f"127.0.0.1:{grpc}"
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"server did not become ready; see {work}/server-{max_batch}.log")


def _closed_loop(make_call: Callable[[], Callable[[], None]], concurrency: int, n: int, limit: float) -> dict[str, Any]:
    """``concurrency`` workers, each with its own connection, send ``n`` requests in total (or stop at ``limit`` s)."""
    per_worker = max(1, n // concurrency)
    deadline = time.monotonic() + limit

    def worker(_: int) -> list[float]:
        call, out = make_call(), []
        call()  # connection set-up and warm-up, not timed
        for _ in range(per_worker):
            if time.monotonic() > deadline:
                break
            t0 = time.perf_counter()
            call()
            out.append((time.perf_counter() - t0) * 1000)
        return out

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        lat = np.concatenate([np.asarray(v) for v in pool.map(worker, range(concurrency))])
    wall = time.perf_counter() - start
    return {"concurrency": concurrency, "requests": int(lat.size), "p50_ms": float(np.percentile(lat, 50)),
            "p99_ms": float(np.percentile(lat, 99)), "throughput_rps": float(lat.size / wall)}


def _callers(url: str, grpc_addr: str, x: np.ndarray) -> dict[str, Callable[[], Callable[[], None]]]:
    """Per-protocol factories of one-request callables; bodies are encoded once here."""
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

    def http(path: str, body: bytes, headers: dict[str, str]) -> Callable[[], Callable[[], None]]:
        def make() -> Callable[[], None]:
            client = httpx.Client(base_url=url, timeout=60)
            return lambda: client.post(path, content=body, headers=headers).raise_for_status()
        return make

    def grpc_make() -> Callable[[], None]:
        stub = pb_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(grpc_addr))
        return lambda: stub.ModelInfer(request, timeout=60)

    return {"v1-rest": http(f"/v1/models/{NAME}:predict", v1_body, {"Content-Type": "application/json"}),
            "v2-binary": http(f"/v2/models/{NAME}/infer", v2_body, v2_headers), "v2-grpc": grpc_make}


def _direct(onnx: Path, threads: int | None, x: np.ndarray, n: int, limit: float) -> dict[str, Any]:
    from medopt.serve.artifact import onnx_runner

    run = onnx_runner(onnx, threads)

    def call() -> None:
        run(x)

    row = _closed_loop(lambda: call, 1, n, limit)
    return {"server": "in-process", "protocol": "direct-ort", **row}


def _batch_scaling(onnx: Path, threads: int | None, size: int, reps: int) -> dict[str, float]:
    """ORT ms per image at batch 1, 4 and 16: the most any batching server could gain on this CPU."""
    from medopt.serve.artifact import onnx_runner

    run = onnx_runner(onnx, threads)
    out: dict[str, float] = {}
    for batch in (1, 4, 16):
        xb = np.random.default_rng(batch).standard_normal((batch, 3, size, size)).astype(np.float32)
        run(xb)
        t = []
        for _ in range(reps):
            t0 = time.perf_counter()
            run(xb)
            t.append((time.perf_counter() - t0) * 1000)
        out[f"batch_{batch}_ms_per_image"] = float(np.median(t)) / batch
    out["max_batching_gain"] = out["batch_1_ms_per_image"] / out["batch_16_ms_per_image"]
    return out


def _decode_compare(x: np.ndarray, reps: int) -> dict[str, float]:
    """ms per image: kserve's list-based binary decoding vs medopt's numpy decoding of the same body."""
    from medopt.serve.binary import decode_binary_request, encode_binary_request, kserve_list_decode

    body, n = encode_binary_request(x)
    timings = {}
    for name, fn in (("kserve_list_ms", lambda: kserve_list_decode(body, n, NAME)),
                     ("medopt_numpy_ms", lambda: decode_binary_request(body, n, NAME).inputs[0].as_numpy())):
        fn()
        t = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            t.append((time.perf_counter() - t0) * 1000)
        timings[name] = float(np.median(t)) / x.shape[0]
    timings["speedup"] = timings["kserve_list_ms"] / timings["medopt_numpy_ms"]
    return timings


def _serve_rows(args: argparse.Namespace, work: Path, x: np.ndarray, n: int) -> list[dict[str, Any]]:
    rows = []
    for label, max_batch in (("batched", 16), ("unbatched", 1)):
        proc, url, grpc_addr = _start(work, args.threads, max_batch)
        try:
            for protocol, make in _callers(url, grpc_addr, x).items():
                for conc in (1, 16):
                    if label == "unbatched" and conc == 1:
                        continue  # batching never waits for a lone client: concurrency 1 is the same server
                    row = _closed_loop(make, conc, n if conc == 1 else 2 * n, args.time_limit)
                    rows.append({"server": label, "protocol": protocol, **row})
                    print_table([rows[-1]], COLUMNS)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    return rows


def _goals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def find(server: str, protocol: str, conc: int) -> dict[str, Any]:
        return next(r for r in rows if (r["server"], r["protocol"], r["concurrency"]) == (server, protocol, conc))

    direct = find("in-process", "direct-ort", 1)["p50_ms"]
    out = []
    for protocol in ("v2-binary", "v2-grpc"):
        overhead = find("batched", protocol, 1)["p50_ms"] - direct
        out.append(goal(f"{protocol} p50 overhead over direct ORT at concurrency 1 (ms)", overhead, "<= 3",
                        overhead <= 3.0))
    for protocol in ("v2-binary", "v2-grpc"):
        ratio = find("batched", protocol, 16)["throughput_rps"] / find("unbatched", protocol, 16)["throughput_rps"]
        out.append(goal(f"{protocol} throughput at concurrency 16, batched / unbatched", ratio, ">= 1.5",
                        ratio >= 1.5))
    return out


def main() -> int:
    args = _args()
    n = args.requests or (40 if args.quick else 300)
    x = np.random.default_rng(0).standard_normal((1, 3, args.size, args.size)).astype(np.float32)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="medopt-bench-serve-") as tmp:
        work = Path(tmp)
        _, onnx = _store_model(args, work)
        rows = [_direct(onnx, args.threads, x, n, args.time_limit)]
        print_table(rows, COLUMNS)
        rows += _serve_rows(args, work, x, n)
        scaling = _batch_scaling(onnx, args.threads, args.size, 5 if args.quick else 20)
    decode = _decode_compare(x, 5 if args.quick else 20)
    goals = _goals(rows)
    print_table(rows, COLUMNS)
    print(f"V2 binary decode per {args.size}x{args.size} image: kserve lists {decode['kserve_list_ms']:.2f} ms, "
          f"numpy {decode['medopt_numpy_ms']:.3f} ms ({decode['speedup']:.0f}x)")
    print(f"ORT ms per image at batch 1/4/16: {scaling['batch_1_ms_per_image']:.2f} / "
          f"{scaling['batch_4_ms_per_image']:.2f} / {scaling['batch_16_ms_per_image']:.2f} -> the most batching can "
          f"gain on this CPU is {scaling['max_batching_gain']:.2f}x")
    for g in goals:
        print(f"goal {'met' if g['met'] else 'MISSED'}: {g['name']} = {g['value']:.2f} ({g['target']})")
    wall = time.perf_counter() - started
    path = write_results("serve", {"args": vars(args), "weights": "untrained (latency only)", "rows": rows,
                                   "binary_decode": decode, "ort_batch_scaling": scaling, "goals": goals, "wall_seconds": wall}, args.quick)
    print(f"results: {path} ({wall:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
