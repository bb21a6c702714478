"""The two ways a served model runs: an ONNX Runtime session or the PyTorch module, each on ``serve.device``.

Both are numpy in, float32 logits out, so batching and encoding never know which runtime answered. Only the torch
runner imports torch (through ``device.import_torch``): the ONNX path works in the slim predictor image.

The thread budget (``thread_budget``): a server runs ``serve.workers`` batches at once, each on ``serve.threads``
intra-op threads; unset, one worker gets the runtime's default (ORT: one thread per physical core) and several
workers share the cores this process may use, so concurrent batches never oversubscribe the CPU. ONNX Runtime's intra-op workers do not spin-wait between ops in the server's sessions
(``session.intra_op.allow_spinning=0``): a spinning worker keeps a core busy for a while after every inference, and
in a server that core is the one the event loop (decoding, responses) and, on a shared host, the client need. The
inter-op pool is one thread (sequential execution), so a batch uses exactly ``threads`` cores.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medopt.serve.device import Device, import_torch, require_onnx_device, require_torch_device

if TYPE_CHECKING:
    from medopt.models.model_file import ModelBundle

Runner = Callable[[np.ndarray], np.ndarray]


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. a container's cpuset), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def thread_budget(threads: int | None, workers: int = 1, cores: int | None = None) -> int | None:
    """Intra-op threads per batch: ``threads`` as configured; else, for several ``workers``, the usable cores shared
    among them; else None (the runtime's default for a process of its own)."""
    if threads is not None:
        return int(threads)
    if workers <= 1:
        return None
    return max(1, (cores or usable_cores()) // workers)


def ort_session(path: Path, threads: int | None, device: Device = "cpu", *, spinning: bool = False) -> Any:
    """An ORT session on ``device``'s providers, at a fixed intra-op thread count (None: ORT's default), one inter-op
    thread (sequential execution), and intra-op workers that sleep instead of spin between ops unless ``spinning``.

    Raises:
        DeviceError: "cuda" asked for and this onnxruntime has no CUDA provider.
    """
    import onnxruntime as ort

    providers = require_onnx_device(device)
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    flag = "1" if spinning else "0"
    options.add_session_config_entry("session.intra_op.allow_spinning", flag)
    options.add_session_config_entry("session.inter_op.allow_spinning", flag)
    return ort.InferenceSession(str(path), sess_options=options, providers=providers)


def onnx_runner(path: Path, threads: int | None, device: Device = "cpu", *, spinning: bool = False) -> Runner:
    """The graph's first output (the logits) for one float32 batch fed to its one input.

    The input array is handed to ORT as it is (a C-contiguous float32 array is used in place, no copy).
    """
    session = ort_session(path, threads, device, spinning=spinning)
    input_name = session.get_inputs()[0].name

    def run(x: np.ndarray) -> np.ndarray:
        return session.run(None, {input_name: x})[0]

    run.session = session  # type: ignore[attr-defined]  # tests read the applied thread budget from it
    return run


def torch_runner(bundle: ModelBundle, threads: int | None, device: Device = "cpu") -> Runner:
    """The PyTorch model in eval/inference mode on ``device``; each batch is moved there and the logits back.

    Raises:
        DeviceError: no torch, or "cuda" asked for and torch sees no GPU.
    """
    torch = import_torch()
    where = require_torch_device(device)
    if threads is not None:
        torch.set_num_threads(threads)
    model = bundle.model.eval().to(where)

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(x).to(where)).float().cpu().numpy()

    return run
