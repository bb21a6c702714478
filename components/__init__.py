"""Thin typed KFP components, one per step of ``medopt.pipeline.step_list.STEPS``; each calls ``run_step``.

KFP needs a static, typed signature per component, so each step has its own small module; ``COMPONENTS`` maps a
step's name to its component for ``pipelines/medopt_pipeline.py``.
"""

from components.bench import bench_component
from components.compress import compress_component
from components.data import data_component
from components.deploy import deploy_component
from components.evaluate import evaluate_component
from components.federate import federate_component
from components.train import train_component

COMPONENTS = {
    "data": data_component,
    "train": train_component,
    "compress": compress_component,
    "federate": federate_component,
    "deploy": deploy_component,
    "evaluate": evaluate_component,
    "bench": bench_component,
}

__all__ = [
    "COMPONENTS", "bench_component", "compress_component", "data_component", "deploy_component", "evaluate_component",
    "federate_component", "train_component",
]
