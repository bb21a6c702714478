"""The in-process runner: walk ``STEPS`` in this process, passing each step's outputs to later steps by name.

It runs exactly the steps the KFP pipeline runs (``step_list.run_step``, the same bodies and the same config
round-trip through JSON); only the artifact objects differ: small local stand-ins for KFP's, under one folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medopt.config import ExperimentConfig
from medopt.pipeline.step_list import STEPS, run_step


@dataclass
class LocalArtifact:
    """What a KFP component receives for an artifact: a file path and a metadata dict, plus the logging methods of
    KFP's Metrics and ClassificationMetrics (kept plainly in ``metadata``, not in KFP's UI format)."""

    path: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def log_metric(self, name: str, value: float) -> None:
        self.metadata[name] = value

    def log_confusion_matrix(self, categories: list[str], matrix: list[list[int]]) -> None:
        self.metadata["confusion_matrix"] = {"categories": list(categories), "matrix": [list(r) for r in matrix]}

    def log_roc_curve(self, fpr: list[float], tpr: list[float], threshold: list[float]) -> None:
        self.metadata["roc"] = {"fpr": list(fpr), "tpr": list(tpr), "threshold": list(threshold)}


def run_inprocess(cfg: ExperimentConfig, run_id: str, artifact_dir: Path) -> dict[str, LocalArtifact]:
    """Run every step in order; return the artifacts by ``"<step>.<output>"`` (their files lie under artifact_dir)."""
    config_json = cfg.model_dump_json()
    produced: dict[str, LocalArtifact] = {}
    for step in STEPS:
        outputs = {o.name: LocalArtifact(str(artifact_dir / step.name / o.name)) for o in step.outputs}
        inputs = {i.name: produced[i.source] for i in step.inputs}
        run_step(step.name, config_json, run_id, **inputs, **outputs)
        produced.update({f"{step.name}.{name}": artifact for name, artifact in outputs.items()})
    return produced
