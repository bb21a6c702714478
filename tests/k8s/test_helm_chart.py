"""helm/medopt: values validate against the chart's schema and mirror medopt's typed config; templates only
reference values that exist. ``helm template`` output is validated strictly when helm is installed."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from kubeschema import load_docs, validate_manifest
from render import ARTIFACT, HELM_MATRIX, helm, helm_args, tool

from medopt import config

CHART = Path(__file__).resolve().parents[2] / "helm" / "medopt"
VALUE_REF = re.compile(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")


def _values() -> dict[str, Any]:
    return yaml.safe_load((CHART / "values.yaml").read_text())


def _schema() -> dict[str, Any]:
    return json.loads((CHART / "values.schema.json").read_text())


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.capitalize() for p in rest)


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert (chart["apiVersion"], chart["name"], chart["type"]) == ("v2", "medopt", "application")
    names = {p.name for p in (CHART / "templates").iterdir()}
    assert CHART.joinpath("templates", "_helpers.tpl").exists()
    assert {"inferenceservice.yaml", "servingruntime.yaml", "serviceaccounts.yaml", "rbac.yaml"} <= names


def test_default_values_match_schema() -> None:
    jsonschema.Draft7Validator.check_schema(_schema())
    jsonschema.Draft7Validator(_schema()).validate(_values())


@pytest.mark.parametrize("section, key, value", [
    ("deploy", "scaleMetric", "gpu"), ("deploy", "replicas", 2), ("serve", "httpPort", 80),
    ("store", "accessKey", "AKIA"), ("serve", "artifactKey", "x"), ("serve", "runtime", "tf"), ("deploy", "canaryTrafficPercent", 150), ("store", "kind", "local"),
    ("deploy", "containerConcurrency", -1), ("deploy", "containerConcurrency", "1"),
])
def test_bad_values_fail_the_schema(section: str, key: str, value: Any) -> None:
    values = _values()
    values[section][key] = value
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(values, _schema())


def test_templates_reference_only_existing_values() -> None:
    values = _values()
    refs = set()
    for tpl in (CHART / "templates").iterdir():
        refs |= set(VALUE_REF.findall(tpl.read_text()))
    assert len(refs) >= 20
    for ref in sorted(refs):
        node: Any = values
        for part in ref.strip(".").split("."):
            assert isinstance(node, dict) and part in node, f"templates use .Values{ref}, missing in values.yaml"
            node = node[part]


def test_values_mirror_store_and_deploy_config() -> None:
    values = _values()
    store_fields = {_camel(f) for f in config.StoreConfig.model_fields} - {"root", "credentialsFile", "createBucket"}
    assert set(values["store"]) == store_fields | {"credentialsSecret"}
    deploy_fields = {_camel(f) for f in config.DeployConfig.model_fields}
    # name/namespace come from serve.modelName and the release; the PVC is for local stores only; the Secret is
    # store.credentialsSecret. Ports are ServeConfig's (serve.httpPort/grpcPort), never a deploy value.
    # apply/readyTimeoutS are the pipeline's deploy step's own (it applies the manifests), not chart values.
    assert set(values["deploy"]) == deploy_fields - {"name", "namespace", "artifactsPvc", "credentialsSecret",
                                                     "apply", "readyTimeoutS", "pollS"}
    assert values["store"]["credentialsSecret"] == config.DeployConfig().credentials_secret
    defaults = config.DeployConfig()
    for key, value in values["deploy"].items():
        field = re.sub(r"([A-Z])", r"_\1", key).lower()
        assert getattr(defaults, field) == value, key
    serve_defaults = config.ServeConfig()
    assert (values["serve"]["httpPort"], values["serve"]["grpcPort"]) == (serve_defaults.http_port,
                                                                          serve_defaults.grpc_port)


def test_values_mirror_serve_config() -> None:
    serve = getattr(config, "ServeConfig", None)
    if serve is None:
        pytest.skip("ServeConfig is not in medopt.config yet")
    assert set(_values()["serve"]) == {_camel(f) for f in serve.model_fields}


def test_helm_lint_passes() -> None:
    out = subprocess.run([tool("helm"), "lint", str(CHART), "--strict", "--set", f"serve.artifact={ARTIFACT}"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("case", sorted(HELM_MATRIX))
def test_helm_template_renders_valid_manifests(case: str) -> None:
    docs = helm(case)
    assert {d["kind"] for d in docs} >= {"InferenceService", "ServingRuntime"}
    for doc in docs:
        validate_manifest(doc)
    (isvc,) = [d for d in docs if d["kind"] == "InferenceService"]
    model = isvc["spec"]["predictor"]["model"]
    assert model["storageUri"] == "s3://medopt/runs/r1/compress/int8/"
    assert model["args"][:3] == ["--artifact=model.onnx", "--set=store.kind=local", "--set=store.root=/mnt/models"]
    assert "envFrom" not in model and "env" not in model
    (runtime,) = [d for d in docs if d["kind"] == "ServingRuntime"]
    container = runtime["spec"]["containers"][0]
    assert {"startupProbe", "livenessProbe", "readinessProbe"} <= set(container)
    serverless = HELM_MATRIX[case].get("deploy.deploymentMode") in ("Serverless", "Knative")
    assert len(container["ports"]) == (1 if serverless else 2)
    annotations = isvc["metadata"]["annotations"]
    assert ("autoscaling.knative.dev/class" in annotations) == serverless


def test_helm_renders_the_same_predictor_as_the_python_renderer() -> None:
    """The chart and medopt.serve.deploy describe one InferenceService: same spec apart from labels and the name."""
    from medopt.serve.deploy import render_inference_service, server_args

    for case, deploy in (("default", config.DeployConfig()),
                         ("gpu", config.DeployConfig(gpus=1, cpu_request="4", cpu_limit="8", memory_request="8Gi",
                                                     memory_limit="16Gi")),
                         ("serverless-kpa", config.DeployConfig(
                             deployment_mode="Serverless", scale_metric="concurrency", scale_target=8,
                             container_concurrency=12, min_replicas=0, canary_traffic_percent=10))):
        (chart,) = [d for d in helm(case) if d["kind"] == "InferenceService"]
        py = render_inference_service(deploy, name="medopt", uri="s3://medopt/runs/r1/compress/int8/",
                                      args=server_args(ARTIFACT))
        for doc in (chart, py):
            doc["spec"]["predictor"].pop("labels")
        assert chart["spec"] == py["spec"], case
        assert chart["metadata"]["annotations"] == py["metadata"]["annotations"], case


@pytest.mark.parametrize("values, message", [
    ({"deploy.minReplicas": "5"}, "deploy.minReplicas (5) > deploy.maxReplicas (3)"),
    ({"deploy.cpuRequest": "3"}, "deploy.cpuRequest (3) > deploy.cpuLimit (2)"),
    ({"deploy.cpuRequest": "2500m"}, "deploy.cpuRequest (2500m) > deploy.cpuLimit (2)"),
    ({"deploy.memoryRequest": "3Gi"}, "deploy.memoryRequest (3Gi) > deploy.memoryLimit (2Gi)"),
    ({"serve.grpcPort": "8080"}, "serve.httpPort and serve.grpcPort must differ"),
    ({"deploy.scaleMetric": "concurrency"}, "needs deploy.deploymentMode Serverless or Knative"),
    ({"deploy.canaryTrafficPercent": "10"}, "canaryTrafficPercent needs deploy.deploymentMode"),
    ({"deploy.deploymentMode": "Kubeless"}, "deploymentMode"),
])
def test_bad_values_fail_helm_with_a_reason(values: dict[str, str], message: str) -> None:
    out = subprocess.run(helm_args(values), capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and message in out.stderr, out.stderr


def test_numeric_quantities_from_set_are_accepted() -> None:
    """``--set deploy.cpuRequest=4`` arrives as the integer 4; the chart quotes it as the quantity "4"."""
    out = subprocess.run(helm_args({"deploy.cpuRequest": "4", "deploy.cpuLimit": "8"}), capture_output=True,
                         text=True, timeout=60, check=True).stdout
    (runtime,) = [d for d in load_docs(out) if d["kind"] == "ServingRuntime"]
    assert runtime["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "4"


def test_inference_service_template_downloads_once_without_a_secret() -> None:
    """What the renderer in medopt.serve.deploy does, checked in the template text (helm may be absent)."""
    text = (CHART / "templates" / "inferenceservice.yaml").read_text()
    for absent in ("envFrom", "secretRef", "credentialsSecret", "store.endpoint", "--set=store.kind=s3"):
        assert absent not in text, absent
    assert "dir .Values.serve.artifact" in text and '"--artifact={{ base .Values.serve.artifact }}"' in text
    assert '"--set=store.kind=local"' in text and '"--set=store.root=/mnt/models"' in text
