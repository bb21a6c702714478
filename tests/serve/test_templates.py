"""serving/ manifests: the checked-in examples equal the renderer's output and pass the KServe CRDs strictly."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from medopt.config import ConfigError, DeployConfig, ServeConfig, config_from_dict
from medopt.serve.deploy import (
    DeployError,
    render_inference_service,
    render_serving_runtime,
    render_transformer,
    server_args,
    to_yaml,
)

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "k8s"))
from kubeschema import ManifestInvalid, load_docs, validate_manifest  # noqa: E402

SERVING = REPO / "serving"
URI = "s3://medopt/runs/example/compress/int8-static/"  # the artifact's folder: model.onnx + its manifest
GPU = DeployConfig(gpus=1, cpu_request="4", cpu_limit="8", memory_request="8Gi", memory_limit="16Gi")
# Knative allows one container port: Serverless InferenceServices use a runtime rendered for that mode.
SERVERLESS_RUNTIME = DeployConfig(deployment_mode="Serverless", scale_metric="concurrency", runtime="medopt-runtime-serverless")
CANARY = DeployConfig(deployment_mode="Serverless", scale_metric="concurrency", scale_target=8, container_concurrency=12,
                      canary_traffic_percent=10, min_replicas=0, max_replicas=5, runtime="medopt-runtime-serverless")
KEY = "runs/example/compress/int8-static/model.onnx"
ARGS = tuple(server_args(KEY))
# Regenerate with MEDOPT_UPDATE_GOLDEN=1 after an intended change of the renderer.
EXAMPLES: dict[str, Callable[[], dict[str, Any]]] = {
    "servingruntime.yaml": lambda: render_serving_runtime(DeployConfig(), ServeConfig()),
    "servingruntime-serverless.yaml": lambda: render_serving_runtime(SERVERLESS_RUNTIME, ServeConfig()),
    "inferenceservice.yaml": lambda: render_inference_service(DeployConfig(), name="medopt-resnet18", uri=URI,
                                                              args=ARGS),
    "inferenceservice-gpu.yaml": lambda: render_inference_service(GPU, name="medopt-resnet18-gpu", uri=URI,
                                                                  args=ARGS),
    "inferenceservice-canary.yaml": lambda: render_inference_service(CANARY, name="medopt-resnet18", uri=URI,
                                                                     args=ARGS),
    "inferenceservice-transformer.yaml": lambda: render_inference_service(
        DeployConfig(), name="medopt-resnet18", uri=URI, args=ARGS,
        transformer=render_transformer(DeployConfig(), ServeConfig(), key=KEY, uri=URI)),
}


@pytest.mark.parametrize("filename", sorted(EXAMPLES))
def test_checked_in_example_matches_renderer_and_crd(filename: str) -> None:
    rendered = to_yaml(EXAMPLES[filename]())
    path = SERVING / filename
    if os.environ.get("MEDOPT_UPDATE_GOLDEN") == "1":
        path.write_text(rendered)
    assert path.read_text() == rendered, f"{path} is stale: rerun with MEDOPT_UPDATE_GOLDEN=1"
    for doc in load_docs(path.read_text()):
        validate_manifest(doc)


def _predictor(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["predictor"]


def test_inference_service_fields() -> None:
    doc = EXAMPLES["inferenceservice.yaml"]()
    p = _predictor(doc)
    assert p["serviceAccountName"] == "medopt-serving"
    assert (p["minReplicas"], p["maxReplicas"], p["scaleMetric"], p["scaleTarget"]) == (1, 3, "cpu", 70)
    assert "canaryTrafficPercent" not in p
    m = p["model"]
    assert (m["storageUri"], m["protocolVersion"], m["runtime"]) == (URI, "v2", "medopt-runtime")
    assert m["args"] == ["--artifact=model.onnx", "--set=store.kind=local", "--set=store.root=/mnt/models"]
    assert "env" not in m and "envFrom" not in m  # only the storage initializer reads the store
    sc = m["securityContext"]
    assert sc["runAsNonRoot"] and sc["readOnlyRootFilesystem"] and sc["capabilities"] == {"drop": ["ALL"]}
    assert "nvidia.com/gpu" not in m["resources"]["limits"]
    gpu = _predictor(EXAMPLES["inferenceservice-gpu.yaml"]())["model"]["resources"]
    assert gpu["limits"]["nvidia.com/gpu"] == gpu["requests"]["nvidia.com/gpu"] == "1"
    canary = EXAMPLES["inferenceservice-canary.yaml"]()
    assert _predictor(canary)["canaryTrafficPercent"] == 10
    assert canary["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Serverless"


def test_transformer_fields() -> None:
    doc = EXAMPLES["inferenceservice-transformer.yaml"]()
    assert doc["spec"]["predictor"] == EXAMPLES["inferenceservice.yaml"]()["spec"]["predictor"]
    t = doc["spec"]["transformer"]
    assert t["serviceAccountName"] == "medopt-serving" and t["labels"]["medopt.io/s3-access"] == "true"
    c = t["containers"][0]
    assert c["image"] == DeployConfig().image and c["command"] == ["python", "-m", "medopt.serve.transformer"]
    # KServe's controller appends --model_name and --predictor_host; --http_port is ours, so it appends no default
    assert c["args"] == ["--host=0.0.0.0", "--http_port=8080", "--protocol=v2", *ARGS]
    assert not any(a.startswith(("--model_name", "--predictor_host")) for a in c["args"])
    assert c["env"] == [{"name": "STORAGE_URI", "value": URI}]  # the storage initializer fills /mnt/models
    assert [(p["name"], p["containerPort"]) for p in c["ports"]] == [("http1", 8080)]
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] and sc["readOnlyRootFilesystem"] and sc["capabilities"] == {"drop": ["ALL"]}
    assert t["securityContext"]["runAsNonRoot"] and "envFrom" not in c
    gpu = render_transformer(GPU, ServeConfig(http_port=9090, grpc_port=9091), key=KEY, uri=URI)["containers"][0]
    assert "nvidia.com/gpu" not in gpu["resources"]["limits"] and gpu["resources"]["limits"]["cpu"] == "8"
    assert "--http_port=9090" in gpu["args"] and gpu["readinessProbe"]["httpGet"]["port"] == 9090
    with pytest.raises(DeployError, match="serve.http_port 80 is privileged"):
        render_transformer(DeployConfig(), ServeConfig(http_port=80), key=KEY, uri=URI)


def test_transformer_entrypoint_accepts_rendered_and_controller_args() -> None:
    from medopt.serve.transformer import _parser

    c = EXAMPLES["inferenceservice-transformer.yaml"]()["spec"]["transformer"]["containers"][0]
    args = _parser().parse_args([*c["args"], "--model_name", "medopt-resnet18", "--predictor_host",
                                 "medopt-resnet18-predictor.medopt"])
    assert (args.http_port, args.protocol, args.artifact, args.host) == (8080, "v2", "model.onnx", "0.0.0.0")
    assert (args.model_name, args.predictor_host) == ("medopt-resnet18", "medopt-resnet18-predictor.medopt")


def test_serving_runtime_ports_and_entrypoint() -> None:
    raw = render_serving_runtime(DeployConfig(), ServeConfig())["spec"]
    c = raw["containers"][0]
    assert c["command"] == ["python", "-m", "medopt.serve"]
    assert c["args"] == ["--model-name={{.Name}}", "--host=0.0.0.0", "--port=8080", "--grpc-port=8081"]
    assert [(p["name"], p["containerPort"]) for p in c["ports"]] == [("http1", 8080), ("grpc", 8081)]
    assert "grpc-v2" in raw["protocolVersions"] and raw["supportedModelFormats"][0]["name"] == "medopt"
    serverless = render_serving_runtime(CANARY, ServeConfig())["spec"]["containers"][0]
    assert [p["name"] for p in serverless["ports"]] == ["http1"]  # Knative: one port per container


def test_serving_runtime_ports_come_from_serve_config() -> None:
    raw = render_serving_runtime(DeployConfig(), ServeConfig(http_port=9090, grpc_port=9091))["spec"]
    c = raw["containers"][0]
    assert c["args"][2:] == ["--port=9090", "--grpc-port=9091"]
    assert [p["containerPort"] for p in c["ports"]] == [9090, 9091]
    assert c["readinessProbe"]["httpGet"]["port"] == 9090
    assert raw["annotations"]["prometheus.kserve.io/port"] == "9090"
    with pytest.raises(DeployError, match="serve.http_port 80 is privileged"):
        render_serving_runtime(DeployConfig(), ServeConfig(http_port=80))
    with pytest.raises(DeployError, match="serve.grpc_port 443 is privileged"):
        render_serving_runtime(DeployConfig(), ServeConfig(grpc_port=443))


def test_no_secret_values_in_manifests() -> None:
    text = "".join((SERVING / f).read_text() for f in EXAMPLES).lower()
    for word in ("aws_secret_access_key", "secret_key", "password", "minio123", "access_key"):
        assert word not in text


@pytest.mark.parametrize("mutate, where", [
    (lambda d: d["spec"]["predictor"]["model"].update(storageURI="s3://x/y"), "storageURI"),
    (lambda d: d["spec"]["predictor"].update(scaleMetric="gpu"), "scaleMetric"),
    (lambda d: d["spec"]["predictor"]["model"]["securityContext"].update(readOnly=True), "readOnly"),
    (lambda d: d["metadata"].update(label={"a": "b"}), "label"),
])
def test_wrong_field_fails_strict_validation(mutate: Callable[[dict[str, Any]], None], where: str) -> None:
    doc = EXAMPLES["inferenceservice.yaml"]()
    mutate(doc)
    with pytest.raises(ManifestInvalid, match=where):
        validate_manifest(doc)


@pytest.mark.parametrize("mutate, where", [
    (lambda t: t["containers"][0].update(cmd=["python"]), "cmd"),
    (lambda t: t.update(storageUri="s3://x/y"), "storageUri"),
    (lambda t: t["containers"][0]["ports"][0].update(containerPort="8080"), "containerPort"),
])
def test_wrong_transformer_field_fails_strict_validation(mutate: Callable[[dict[str, Any]], None], where: str) -> None:
    doc = EXAMPLES["inferenceservice-transformer.yaml"]()
    mutate(doc["spec"]["transformer"])
    with pytest.raises(ManifestInvalid, match=where):
        validate_manifest(doc)


def test_wrong_runtime_field_fails() -> None:
    doc = render_serving_runtime(DeployConfig(), ServeConfig())
    doc["spec"]["supportedModelFormats"][0]["autoselect"] = True
    with pytest.raises(ManifestInvalid, match="autoselect"):
        validate_manifest(doc)


@pytest.mark.parametrize("section, message", [
    ({"deploy": {"min_replicas": 4, "max_replicas": 2}}, r"deploy\.min_replicas \(4\) > deploy\.max_replicas \(2\)"),
    ({"deploy": {"scale_metric": "rps"}}, "at deploy: .*scale_metric 'rps' needs deployment_mode Serverless"),
    ({"deploy": {"canary_traffic_percent": 10}}, "at deploy: .*canary_traffic_percent needs"),
    ({"deploy": {"name": "Bad_Name"}}, "at deploy.name: String should match pattern"),
    ({"deploy": {"replicas": 2}}, "at deploy.replicas: unknown key"),
    ({"deploy": {"cpu_limit": "two"}}, "at deploy.cpu_limit: .*'two'"),
    ({"serve": {"http_port": 9000, "grpc_port": 9000}}, r"at serve: .*grpc_port must differ \(both 9000\)"),
])
def test_bad_settings_are_refused(section: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_dict(section)


def test_serverless_settings_are_accepted() -> None:
    cfg = config_from_dict({"deploy": {"deployment_mode": "Serverless", "scale_metric": "rps",
                                       "canary_traffic_percent": 10}})
    assert (cfg.deploy.scale_metric, cfg.deploy.canary_traffic_percent) == ("rps", 10)


def test_bad_name_or_uri_is_refused() -> None:
    with pytest.raises(DeployError, match="not a DNS-1123 label"):
        render_inference_service(DeployConfig(), name="Medopt_1", uri=URI)
    with pytest.raises(DeployError, match="storageUri"):
        render_inference_service(DeployConfig(), name="medopt", uri="/local/model.onnx")


def test_yaml_round_trip() -> None:
    doc = EXAMPLES["inferenceservice-gpu.yaml"]()
    assert yaml.safe_load(to_yaml(doc)) == doc
