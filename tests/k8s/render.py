"""Render every manifest medopt ships, offline: kustomize overlays, the helm chart over a matrix of values, serving/.

kubectl (with its built-in kustomize) and helm come from the project's set-up (scripts/setup-k8s-tools.sh links them
into .venv/bin); a missing tool fails the tests that need it instead of skipping them.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "medopt"
OVERLAYS = ("local-kind", "cloud", "cloud-gpu")
ARTIFACT = "runs/r1/compress/int8/model.onnx"
# Values a user is expected to pass; each renders and validates strictly (tests/k8s/test_helm_chart.py).
HELM_MATRIX: dict[str, dict[str, str]] = {
    "default": {},
    "serverless-kpa": {"deploy.deploymentMode": "Serverless", "deploy.scaleMetric": "concurrency",
                       "deploy.scaleTarget": "8", "deploy.containerConcurrency": "12", "deploy.minReplicas": "0",
                       "deploy.canaryTrafficPercent": "10"},
    "knative-name": {"deploy.deploymentMode": "Knative", "deploy.scaleMetric": "rps", "deploy.scaleTarget": "40"},
    "standard-name": {"deploy.deploymentMode": "Standard"},
    "transformer": {"deploy.transformer": "true"},
    "gpu": {"deploy.gpus": "1", "deploy.cpuRequest": "4", "deploy.cpuLimit": "8", "deploy.memoryRequest": "8Gi",
            "deploy.memoryLimit": "16Gi"},
    "helm-only": {"serviceAccounts.create": "true", "rbac.create": "true"},
}


def tool(name: str) -> str:
    """Path of kubectl/helm: the set-up's copy in .venv/bin first, then PATH."""
    local = REPO / ".venv" / "bin" / name
    found = str(local) if local.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is missing: run `make env` (scripts/setup-k8s-tools.sh installs it)")
    return found


def load_docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


@functools.cache
def _kustomize_text(overlay: str) -> str:
    folder = REPO / "k8s" / "kfp" if overlay == "kfp" else REPO / "k8s" / "overlays" / overlay
    return subprocess.run([tool("kubectl"), "kustomize", str(folder)],
                          capture_output=True, text=True, timeout=60, check=True).stdout


def kustomize(overlay: str) -> list[dict[str, Any]]:
    """The overlay's rendered objects (fresh copies); "kfp" is k8s/kfp, the objects in KFP's namespace."""
    return load_docs(_kustomize_text(overlay))


def helm_args(values: dict[str, str], artifact: str = ARTIFACT) -> list[str]:
    args = [tool("helm"), "template", "medopt", str(CHART), "-n", "medopt", "--set", f"serve.artifact={artifact}"]
    for key, value in values.items():
        args += ["--set", f"{key}={value}"]
    return args


@functools.cache
def _helm_text(case: str) -> str:
    return subprocess.run(helm_args(HELM_MATRIX[case]), capture_output=True, text=True, timeout=60,
                          check=True).stdout


def helm(case: str) -> list[dict[str, Any]]:
    """``helm template`` of one HELM_MATRIX case."""
    return load_docs(_helm_text(case))


def serving_examples() -> list[dict[str, Any]]:
    """The checked-in serving/*.yaml objects (the renderer's output, see tests/serve/test_templates.py)."""
    return [d for p in sorted((REPO / "serving").glob("*.yaml")) for d in load_docs(p.read_text())]


def key(doc: dict[str, Any]) -> tuple[str, str, str, str]:
    """Identity of an object as the API server sees it: group, kind, namespace, name."""
    group = doc["apiVersion"].rpartition("/")[0]
    return group, doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"]
