"""Peak memory of one candidate, measured in a fresh process: load the artifact, run one batch, report the growth.

Why a fresh process: inside the benchmark process the allocators (ONNX Runtime's arenas, torch's caching, glibc)
already hold pages from earlier candidates, so an in-process RSS delta reads about zero from the second model on.
A child process that imports only the runtime it needs, then loads the artifact and runs one batch, gives each
candidate the same starting point; its peak RSS (``VmHWM``; not ``ru_maxrss``, which Linux carries over from the
parent across ``exec``) minus its RSS after the imports is the
memory the model costs (weights, activations, runtime arenas).

    python -m medopt.compress.footprint {onnx|torch-module|torch-export} PATH BATCH C H W THREADS
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

from medopt.compress.errors import CompressError

FootprintKind = Literal["onnx", "torch-module", "torch-export"]
KINDS: tuple[str, ...] = ("onnx", "torch-module", "torch-export")
_MB = 1024.0 * 1024.0


def footprint(kind: FootprintKind, path: str | Path, input_shape: tuple[int, int, int], batch: int, threads: int,
              *, timeout_s: float = 600.0) -> dict[str, float]:
    """``{"peak_rss_mb", "runtime_rss_mb", "model_peak_mb"}`` of running one ``batch`` of ``path`` in a child.

    Raises:
        CompressError: unknown kind, or the child failed (its last stderr line is in the message).
    """
    if kind not in KINDS:
        raise CompressError(f"footprint: kind must be one of {KINDS}, got {kind!r}")
    cmd = [sys.executable, "-m", "medopt.compress.footprint", kind, str(path), str(batch),
           *(str(d) for d in input_shape), str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise CompressError(f"footprint of {path} ({kind}) failed: {last}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise CompressError(f"/proc/self/status has no {field}")


def _runner(kind: str, path: str, threads: int) -> Any:
    import numpy as np

    if kind == "onnx":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        load = lambda: ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])  # noqa: E731
        return load, lambda s, x: s.run(None, {s.get_inputs()[0].name: x})
    import torch

    torch.set_num_threads(threads)
    if kind == "torch-export":
        import torchao.quantization.pt2e  # noqa: F401  (registers the quantized ops a PT2E program uses)

        load = lambda: torch.export.load(path).module()  # noqa: E731
    else:
        import medopt.models  # noqa: F401  (the model classes the pickle names: timm's and medopt's own)

        load = lambda: torch.load(path, weights_only=False).eval()  # noqa: E731

    def run(m: Any, x: np.ndarray) -> Any:
        with torch.inference_mode():
            return m(torch.from_numpy(x))

    return load, run


def _main(argv: list[str]) -> int:
    import numpy as np

    kind, path, batch, c, h, w, threads = argv[0], argv[1], *map(int, argv[2:7])
    load, run = _runner(kind, path, threads)
    x = np.random.default_rng(0).standard_normal((batch, c, h, w), dtype=np.float32)
    runtime = _status_kib("VmRSS") * 1024
    model = load()
    run(model, x)
    peak = _status_kib("VmHWM") * 1024
    print(json.dumps({"peak_rss_mb": peak / _MB, "runtime_rss_mb": runtime / _MB,
                      "model_peak_mb": max(0, peak - runtime) / _MB}))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
