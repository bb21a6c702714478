"""serve.device: the providers chosen per device, and a GPU that is asked for but missing stops the server in one
line (this machine's onnxruntime is the CPU build and torch sees no GPU: the error paths are the testable ones)."""

from __future__ import annotations

import logging
from pathlib import Path

import onnxruntime as ort
import pytest
import torch
import yaml
from pydantic import ValidationError

from serve_fixtures import MODEL_KEY, ONNX_KEY, Stored

from medopt.config import ServeConfig
from medopt.serve import __main__ as serve_main
from medopt.serve.artifact import load_served_model
from medopt.serve.device import (
    CPU_PROVIDER,
    CUDA_PROVIDER,
    DeviceError,
    onnx_providers,
    require_onnx_device,
    require_torch_device,
)

NO_CUDA_EP = CUDA_PROVIDER not in ort.get_available_providers()


def test_providers_per_device() -> None:
    assert onnx_providers("cpu") == [CPU_PROVIDER]
    assert onnx_providers("cuda") == [CUDA_PROVIDER, CPU_PROVIDER]
    with pytest.raises(DeviceError, match="'cpu' or 'cuda'"):
        onnx_providers("tpu")  # type: ignore[arg-type]


def test_cuda_needs_the_cuda_provider() -> None:
    assert require_onnx_device("cuda", [CUDA_PROVIDER, CPU_PROVIDER]) == [CUDA_PROVIDER, CPU_PROVIDER]
    with pytest.raises(DeviceError, match=f"needs onnxruntime's {CUDA_PROVIDER}, but this onnxruntime has only "
                                          f"{CPU_PROVIDER}"):
        require_onnx_device("cuda", [CPU_PROVIDER])
    assert require_onnx_device("cpu", [CPU_PROVIDER]) == [CPU_PROVIDER]


def test_serve_config_device() -> None:
    assert ServeConfig().device == "cpu"
    assert ServeConfig(device="cuda").device == "cuda"
    with pytest.raises(ValidationError):
        ServeConfig(device="gpu")  # type: ignore[arg-type]


def test_torch_cuda_without_a_gpu_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match=r"torch.cuda.is_available\(\) is false"):
        require_torch_device("cuda")
    assert require_torch_device("cpu") == "cpu"


@pytest.mark.skipif(not NO_CUDA_EP, reason="this onnxruntime has the CUDA provider")
def test_onnx_session_on_cuda_is_refused_not_run_on_cpu(stored: Stored, tmp_path: Path) -> None:
    with pytest.raises(DeviceError, match=CUDA_PROVIDER):
        load_served_model(stored.store, ONNX_KEY, name="m", runtime="auto", threads=1, max_rows=4,
                          workdir=tmp_path, device="cuda")


def test_torch_model_moves_to_cuda_or_refuses(stored: Stored, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match="no CUDA device"):
        load_served_model(stored.store, MODEL_KEY, name="m", runtime="auto", threads=1, max_rows=4,
                          workdir=tmp_path, device="cuda")


def _serve(stored: Stored, tmp_path: Path, *argv: str) -> int:
    config = tmp_path / "serve.yaml"
    config.write_text(yaml.safe_dump({"store": {"root": str(stored.root)}}))
    return serve_main.main(["--config", str(config), *argv])


@pytest.mark.skipif(not NO_CUDA_EP, reason="this onnxruntime has the CUDA provider")
@pytest.mark.parametrize("flag", [["--set", "serve.device=cuda"], ["--device", "cuda"]])
def test_server_refuses_to_start_on_a_missing_gpu(flag: list[str], stored: Stored, tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        assert _serve(stored, tmp_path, "--artifact", ONNX_KEY, *flag) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "serve.device=cuda needs onnxruntime's CUDAExecutionProvider" in errors[0]


def test_server_refuses_a_torch_model_on_a_missing_gpu(stored: Stored, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with caplog.at_level(logging.ERROR):
        assert _serve(stored, tmp_path, "--artifact", MODEL_KEY, "--set", "serve.device=cuda") == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "torch sees no CUDA device" in errors[0]
