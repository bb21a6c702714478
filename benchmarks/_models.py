"""Stored models for the serving-side benchmarks: a registry backbone with random weights, as ``model.pt`` + ONNX.

Why random weights: autoscaling and placement benchmarks measure cost (service time, bytes, cold start), which does
not depend on what the weights learned; training to convergence would add minutes and change nothing measured.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def store_random_model(name: str, size: int, root: Path, prefix: str) -> tuple[Path, str, Any]:
    """``name`` at ``size`` px (1 channel, 2 classes) stored under ``prefix`` in ``root/store``.

    Returns the store root, the ONNX key and the eval-mode torch model.
    """
    import torch

    from medopt.compress.export import export_onnx
    from medopt.config import ExperimentConfig, ModelConfig, PreprocessConfig
    from medopt.models import create_model
    from medopt.models.geometry import ModelGeometry
    from medopt.models.model_file import save_model_file
    from medopt.store import LocalStore

    torch.manual_seed(0)
    work = root / prefix.replace("/", "_")
    work.mkdir(parents=True, exist_ok=True)
    pre = PreprocessConfig(image_size=size)
    cfg = ExperimentConfig.model_validate({"data": {"preprocess": pre.model_dump()}}).model_dump(mode="json")
    mcfg = ModelConfig(name=name, pretrained=False)
    net = create_model(mcfg, in_chans=1, num_classes=2, input_size=size).eval()
    save_model_file(work / "model.pt", net, model_config=mcfg, preprocess=pre,
                    geometry=ModelGeometry.for_preprocess(pre, in_chans=1, class_names=("a", "b"), task="binary"))
    onnx = export_onnx(net, work / "model.onnx", input_shape=(1, size, size), opset=17)
    store = LocalStore(root / "store")
    store.put_file(f"{prefix}/model.pt", work / "model.pt", kind="model/pytorch", config=cfg)
    store.put_file(f"{prefix}/model.onnx", onnx, kind="model/onnx", config=cfg, parents=[f"{prefix}/model.pt"])
    return root / "store", f"{prefix}/model.onnx", net
