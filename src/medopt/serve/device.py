"""Where a served model runs (``serve.device``), checked before serving: a GPU that is asked for and missing is an
error, never a silent fall back to the CPU (which would miss the latency it was deployed for).

Also the one place the torch runtime is imported, so the slim predictor image (no torch) fails with one line.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from types import ModuleType
from typing import Literal

from medopt.errors import MedoptError

Device = Literal["cpu", "cuda"]
CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"
NO_TORCH = "this image has no torch; serve the ONNX artifact or use the medopt image"


class DeviceError(MedoptError, ValueError):
    """The configured device or runtime is not available in this process (no GPU, no CUDA build, no torch)."""


def onnx_providers(device: Device) -> list[str]:
    """ONNX Runtime execution providers for ``device``, in priority order.

    CPU stays second on "cuda" only for the few operators the CUDA provider lacks; that the CUDA provider itself
    is there is checked by ``require_onnx_device``.
    """
    if device == "cuda":
        return [CUDA_PROVIDER, CPU_PROVIDER]
    if device == "cpu":
        return [CPU_PROVIDER]
    raise DeviceError(f"serve.device must be 'cpu' or 'cuda', got {device!r}")


def require_onnx_device(device: Device, available: Iterable[str] | None = None) -> list[str]:
    """The providers for ``device`` after checking this onnxruntime build has them (``available``: for tests).

    Raises:
        DeviceError: "cuda" asked for and onnxruntime has no CUDAExecutionProvider (CPU build, or no GPU libs).
    """
    providers = onnx_providers(device)
    if available is None:
        import onnxruntime as ort

        available = ort.get_available_providers()
    have = list(available)
    missing = [p for p in providers if p not in have]
    if missing:
        raise DeviceError(f"serve.device={device} needs onnxruntime's {', '.join(missing)}, but this onnxruntime "
                          f"has only {', '.join(have) or 'none'} (install onnxruntime-gpu, use the medopt-cuda "
                          "image, or set serve.device=cpu)")
    return providers


def import_torch() -> ModuleType:
    """``torch``, or one clear line when this image was built without it (the slim predictor).

    Raises:
        DeviceError: torch is not installed.
    """
    try:
        return importlib.import_module("torch")
    except ImportError:
        raise DeviceError(NO_TORCH) from None


def require_torch_device(device: Device) -> str:
    """The torch device name for ``device`` after checking it is usable.

    Raises:
        DeviceError: no torch, or "cuda" asked for and ``torch.cuda.is_available()`` is false.
    """
    torch = import_torch()
    if device == "cuda" and not torch.cuda.is_available():
        raise DeviceError("serve.device=cuda but torch sees no CUDA device (torch.cuda.is_available() is false; "
                          "check the GPU request and the NVIDIA runtime, or set serve.device=cpu)")
    if device not in ("cpu", "cuda"):
        raise DeviceError(f"serve.device must be 'cpu' or 'cuda', got {device!r}")
    return device


def require_device(runtime: str, device: Device) -> None:
    """Check, before the server starts, that ``runtime`` ("onnx" or "torch") can run on ``device`` here.

    Raises:
        DeviceError: the device (or torch itself) is missing; the message names what and how to fix it.
    """
    if runtime == "onnx":
        require_onnx_device(device)
    else:
        require_torch_device(device)
