"""Why ORT int8 is or is not faster than fp32 for a model: batch-1 latency and time per ONNX op type, side by side.

    python benchmarks/int8_profile.py [--quick] [--models efficientnet_b0 densenet121] [--size 224] [--runs 30]

For each model: fp32 ONNX, ORT static int8 of every quantizable op (what the ``int8-static`` recipe builds), and
int8 of Conv/Gemm only (activations and squeeze-excite gates left in fp32). Latency is timed round-robin at one
thread count (median of the runs at batch 1); a separate profiled session gives the kernel time per op type
(the profiler adds a cost per node, so its totals are for the breakdown, the latency column for speed).
Weights are the seeded random initialisation and calibration uses random inputs: kernel speed does not depend on
the values, and the trained models' speeds are in benchmarks/results/compress.json.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from _common import goal, print_table, write_results

VARIANTS = ("fp32", "int8", "int8-conv-only")


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="efficientnet_b0 at 96 px, 10 runs")
    p.add_argument("--models", nargs="+", default=None, help="default: efficientnet_b0 densenet121")
    p.add_argument("--size", type=int, default=None, help="input side (default 224; quick 96)")
    p.add_argument("--runs", type=int, default=None, help="timed runs per variant (default 30; quick 10)")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default: all cores)")
    args = p.parse_args()
    if (args.size is not None and args.size < 32) or (args.runs is not None and args.runs < 1):
        p.error("--size must be >= 32 and --runs >= 1")
    return args


def _files(name: str, size: int, work: Path) -> dict[str, Path]:
    import torch

    from medopt.compress.export import export_onnx
    from medopt.compress.quantize import quantize_onnx_static
    from medopt.config import ModelConfig
    from medopt.models import create_model

    torch.manual_seed(0)
    model = create_model(ModelConfig(name=name), in_chans=3, num_classes=2, input_size=size).eval()
    fp32 = export_onnx(model, work / f"{name}.fp32.onnx", input_shape=(3, size, size), opset=17)
    calibration = torch.randn(32, 3, size, size, generator=torch.Generator().manual_seed(0))
    return {"fp32": fp32,
            "int8": quantize_onnx_static(fp32, work / f"{name}.int8.onnx", calibration),
            "int8-conv-only": quantize_onnx_static(fp32, work / f"{name}.int8c.onnx", calibration,
                                                   op_types=["Conv", "Gemm"])}


def _op_times(path: Path, x: np.ndarray, threads: int, runs: int, work: Path) -> dict[str, float]:
    """Kernel milliseconds per op type per call, from ORT's profiler."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.enable_profiling = True
    options.profile_file_prefix = str(work / path.stem)
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    for _ in range(runs):
        session.run(None, {session.get_inputs()[0].name: x})
    events = json.loads(Path(session.end_profiling()).read_text())
    total: collections.Counter[str] = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            total[e["args"]["op_name"]] += e["dur"]
    return {op: us / runs / 1000 for op, us in total.most_common()}


def main() -> int:
    from medopt.compress.measure import interleaved_latency, onnx_predictor, resolve_threads

    args = _args()
    models = args.models or (["efficientnet_b0"] if args.quick else ["efficientnet_b0", "densenet121"])
    size = args.size or (96 if args.quick else 224)
    runs = args.runs or (10 if args.quick else 30)
    threads = resolve_threads(args.threads)
    x = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
    rows: list[dict[str, Any]] = []
    goals: list[dict[str, Any]] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in models:
            files = _files(name, size, work)
            timed = interleaved_latency({v: onnx_predictor(p, threads) for v, p in files.items()}, (3, size, size),
                                        (1,), runs, warmup=5)
            base = timed["fp32"]["1"]["median_ms"]
            for variant, path in files.items():
                ops = _op_times(path, x, threads, runs, work)
                ms = timed[variant]["1"]["median_ms"]
                rows.append({"model": name, "variant": variant, "latency_b1_ms": ms, "speedup_vs_fp32": base / ms,
                             "size_mb": path.stat().st_size / 1e6, "profiled_kernel_ms": sum(ops.values()),
                             "top_ops": ", ".join(f"{op} {t:.2f}" for op, t in list(ops.items())[:5]),
                             "op_ms": ops, "nodes": _node_count(path)})
            for variant in ("int8", "int8-conv-only"):
                row = next(r for r in rows if r["model"] == name and r["variant"] == variant)
                goals.append(goal(f"{name} {variant}: faster than ORT fp32 at batch 1", row["speedup_vs_fp32"],
                                  "> 1.0", row["speedup_vs_fp32"] > 1.0))
    print_table(rows, ["model", "variant", "latency_b1_ms", "speedup_vs_fp32", "size_mb", "nodes",
                       "profiled_kernel_ms", "top_ops"])
    path = write_results("int8_profile", {"size": size, "runs": runs, "threads": threads, "rows": rows,
                                          "goals": goals}, args.quick)
    for g in goals:
        print(f"goal {'MET ' if g['met'] else 'MISS'} {g['name']}: {g['value']:.3f} (target {g['target']})")
    print(f"wrote {path}; wall {time.perf_counter() - started:.0f} s")
    return 0


def _node_count(path: Path) -> int:
    import onnx

    return len(onnx.load(str(path)).graph.node)


if __name__ == "__main__":
    sys.exit(main())
