"""Why ORT int8 is or is not faster than fp32 for a model: batch-1 latency and time per ONNX op type, side by side.

    python benchmarks/int8_profile.py [--quick | --smoke] [--models efficientnet_b0 densenet121] [--size 224]
                                      [--runs 10] [--repeats 5]

For each model: fp32 ONNX, ORT static int8 of every quantizable op (what the ``int8-static`` recipe builds), and
int8 of Conv/Gemm only (activations and squeeze-excite gates left in fp32). Latency at batch 1 and one thread count
is timed with ``medopt.bench.interleaved``: blocks of ``--runs`` calls per variant, round-robin with the order rotated,
``--repeats`` blocks each; per variant the median of the block medians with a 95% CI, and the speed-up over fp32 as
a paired ratio with a CI (goals judged on its median). A separate profiled session gives the kernel time per op type
(the profiler adds a cost per node, so its totals are for the breakdown, the latency column for speed).
Weights are the seeded random initialisation and calibration uses random inputs: kernel speed does not depend on
the values, and the trained models' speeds are in benchmarks/results/compress.json.
--smoke: tiny_cnn at 32 px, 2 blocks of 2 calls (checks the script runs).
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

from _common import LoadMonitor, add_mode_flags, goal, mode_of, print_table, write_results

VARIANTS = ("fp32", "int8", "int8-conv-only")
SETTLE_S = 0.05  # ORT/OpenMP worker threads spin after a call; a pause keeps them off the next variant's cores


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_mode_flags(p)
    p.add_argument("--models", nargs="+", default=None,
                   help="default: efficientnet_b0 densenet121; quick efficientnet_b0; smoke tiny_cnn")
    p.add_argument("--size", type=int, default=None, help="input side (default 224; quick 96; smoke 32)")
    p.add_argument("--runs", type=int, default=None,
                   help="calls per timing block and profiled runs (default 10; quick 5; smoke 2)")
    p.add_argument("--repeats", type=int, default=None, help="timing blocks per variant (default 5; smoke 2)")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default: all cores)")
    args = p.parse_args()
    if (args.size is not None and args.size < 32) or any(v is not None and v < 1 for v in (args.runs, args.repeats)):
        p.error("--size must be >= 32, --runs and --repeats >= 1")
    return args


def _latency(predictors: dict[str, Any], x: np.ndarray, runs: int, repeats: int) -> dict[str, list[float]]:
    """Median ms per block of ``runs`` calls, per variant, the variants interleaved (rotated) ``repeats`` times."""
    from medopt.bench import interleaved

    def arm(predict: Any) -> Any:
        def block() -> float:
            time.sleep(SETTLE_S)
            t = []
            for _ in range(runs):
                t0 = time.perf_counter()
                predict(x)
                t.append((time.perf_counter() - t0) * 1000)
            return float(np.median(t))
        return block

    return interleaved({name: arm(p) for name, p in predictors.items()}, repeats=repeats, warmup=1)


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
    from medopt.bench import summarize
    from medopt.compress.measure import onnx_predictor, resolve_threads

    args = _args()
    mode = mode_of(args)
    models = args.models or {"full": ["efficientnet_b0", "densenet121"], "quick": ["efficientnet_b0"],
                             "smoke": ["tiny_cnn"]}[mode]
    size = args.size or {"full": 224, "quick": 96, "smoke": 32}[mode]
    runs = args.runs or {"full": 10, "quick": 5, "smoke": 2}[mode]
    repeats = args.repeats or (2 if mode == "smoke" else 5)
    threads = resolve_threads(args.threads)
    x = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
    rows: list[dict[str, Any]] = []
    goals: list[dict[str, Any]] = []
    timing: dict[str, Any] = {}
    started = time.perf_counter()
    with LoadMonitor(own_load=threads) as monitor, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in models:
            files = _files(name, size, work)
            samples = _latency({v: onnx_predictor(p, threads) for v, p in files.items()}, x, runs, repeats)
            timing[name] = summary = summarize(samples, baseline="fp32", higher_is_better=False)
            for variant, path in files.items():
                ops = _op_times(path, x, threads, runs, work)
                ms = summary["arms"][variant]
                speedup = summary["ratios_vs_baseline"].get(variant, {"median": 1.0, "ci_low": 1.0, "ci_high": 1.0})
                rows.append({"model": name, "variant": variant, "latency_b1_ms": ms["median"],
                             "latency_ci_ms": [ms["ci_low"], ms["ci_high"]], "speedup_vs_fp32": speedup["median"],
                             "speedup_ci": [speedup["ci_low"], speedup["ci_high"]],
                             "size_mb": path.stat().st_size / 1e6, "profiled_kernel_ms": sum(ops.values()),
                             "top_ops": ", ".join(f"{op} {t:.2f}" for op, t in list(ops.items())[:5]),
                             "op_ms": ops, "nodes": _node_count(path)})
            for variant in ("int8", "int8-conv-only"):
                row = next(r for r in rows if r["model"] == name and r["variant"] == variant)
                goals.append(goal(f"{name} {variant}: faster than ORT fp32 at batch 1", row["speedup_vs_fp32"],
                                  "> 1.0", row["speedup_vs_fp32"] > 1.0,
                                  ci=summary["ratios_vs_baseline"][variant]))
    print_table(rows, ["model", "variant", "latency_b1_ms", "speedup_vs_fp32", "size_mb", "nodes",
                       "profiled_kernel_ms", "top_ops"])
    path = write_results("int8_profile", {"models": models, "size": size, "runs": runs, "repeats": repeats,
                                          "threads": threads, "rows": rows, "timing": timing, "goals": goals},
                         mode=mode, load=monitor)
    for g in goals:
        print(f"goal {'MET ' if g['met'] else 'MISS'} {g['name']}: {g['value']:.3f} (95% CI {g['ci'][0]:.3f}.."
              f"{g['ci'][1]:.3f}; target {g['target']})")
    print(f"wrote {path}; wall {time.perf_counter() - started:.0f} s")
    return 0


def _node_count(path: Path) -> int:
    import onnx

    return len(onnx.load(str(path)).graph.node)


if __name__ == "__main__":
    sys.exit(main())
