"""The two ways a served model runs: an ONNX Runtime session or the PyTorch module, each on ``serve.device``.

Both are numpy in, float32 logits out, so batching and encoding never know which runtime answered. Only the torch
runner imports torch (through ``device.import_torch``): the ONNX path works in the slim predictor image.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medopt.serve.device import Device, import_torch, require_onnx_device, require_torch_device

if TYPE_CHECKING:
    from medopt.models.model_file import ModelBundle

Runner = Callable[[np.ndarray], np.ndarray]


def ort_session(path: Path, threads: int | None, device: Device = "cpu") -> Any:
    """An ORT session on ``device``'s providers, at a fixed intra-op thread count.

    Raises:
        DeviceError: "cuda" asked for and this onnxruntime has no CUDA provider.
    """
    import onnxruntime as ort

    providers = require_onnx_device(device)
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=options, providers=providers)


def onnx_runner(path: Path, threads: int | None, device: Device = "cpu") -> Runner:
    """The graph's first output (the logits) for one float32 batch fed to its one input."""
    session = ort_session(path, threads, device)
    input_name = session.get_inputs()[0].name

    def run(x: np.ndarray) -> np.ndarray:
        return session.run(None, {input_name: x})[0]

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
