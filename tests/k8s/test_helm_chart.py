"""helm/medopt: values validate against the chart's schema and mirror medopt's typed config; templates only
reference values that exist. ``helm template`` output is validated strictly when helm is installed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from kubeschema import load_docs, validate_manifest

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
    assert set(values["deploy"]) == deploy_fields - {"name", "namespace", "artifactsPvc", "credentialsSecret"}
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


def test_helm_template_renders_valid_manifests() -> None:
    if shutil.which("helm") is None:
        pytest.skip("helm is not installed")
    out = subprocess.run(["helm", "template", "medopt", str(CHART), "-n", "medopt", "--set",
                          "serve.artifact=runs/r1/compress/int8/model.onnx"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    docs = load_docs(out)
    assert {d["kind"] for d in docs} >= {"InferenceService", "ServingRuntime", "ServiceAccount", "Role"}
    for doc in docs:
        validate_manifest(doc)
    (isvc,) = [d for d in docs if d["kind"] == "InferenceService"]
    model = isvc["spec"]["predictor"]["model"]
    assert model["storageUri"] == "s3://medopt/runs/r1/compress/int8/"
    assert model["args"] == ["--artifact=model.onnx", "--set=store.kind=local", "--set=store.root=/mnt/models"]
    assert "envFrom" not in model and "env" not in model


def test_inference_service_template_downloads_once_without_a_secret() -> None:
    """What the renderer in medopt.serve.deploy does, checked in the template text (helm may be absent)."""
    text = (CHART / "templates" / "inferenceservice.yaml").read_text()
    for absent in ("envFrom", "secretRef", "credentialsSecret", "store.endpoint", "--set=store.kind=s3"):
        assert absent not in text, absent
    assert "dir .Values.serve.artifact" in text and '"--artifact={{ base .Values.serve.artifact }}"' in text
    assert '"--set=store.kind=local"' in text and '"--set=store.root=/mnt/models"' in text
