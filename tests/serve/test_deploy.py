"""The KFP deploy step: picks the chosen model, writes the InferenceService YAML to its output and to the store."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from medopt.config import DeployConfig, ExperimentConfig, ServeConfig, StoreConfig
from medopt.pipeline.refs import RefError, StoreRef
from medopt.serve.deploy import deploy_step, dns_name, server_args, storage_uri
from medopt.store import LocalStore

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "k8s"))
from kubeschema import load_docs, validate_manifest  # noqa: E402


@dataclass
class FakeArtifact:
    """What KFP hands a component: a local path and a metadata dict."""

    path: str
    metadata: dict[str, Any] = field(default_factory=dict)


Setup = tuple[str, LocalStore, FakeArtifact, FakeArtifact]


def _setup(tmp_path: Path, deploy: DeployConfig = DeployConfig()) -> Setup:
    cfg = ExperimentConfig(store=StoreConfig(kind="local", root=str(tmp_path / "store")),
                           serve=ServeConfig(model_name="Lung_CT.v2", http_port=9090, grpc_port=9091), deploy=deploy)
    store = LocalStore(tmp_path / "store")
    trained = store.put_bytes("runs/r1/train/model.pt", b"weights", kind="model/pytorch")
    model = FakeArtifact(str(tmp_path / "in" / "model"))
    StoreRef.from_manifest(store.uri, trained).write(model.path)
    compressed = FakeArtifact(str(tmp_path / "in" / "compressed"))
    Path(compressed.path).write_text(json.dumps({"enabled": False}))
    return cfg.model_dump_json(), store, model, compressed


def test_deploy_step_falls_back_to_the_trained_model(tmp_path: Path) -> None:
    config_json, store, model, compressed = _setup(tmp_path, DeployConfig(namespace="radiology"))
    out = FakeArtifact(str(tmp_path / "out" / "isvc.yaml"))
    key = deploy_step(config_json, "r1", model, compressed, out)
    assert key == "runs/r1/deploy/inferenceservice.yaml"
    text = Path(out.path).read_text()
    assert store.get_bytes(key).decode() == text
    (doc,) = load_docs(text)
    validate_manifest(doc)
    assert doc["metadata"]["name"] == "lung-ct-v2" and doc["metadata"]["namespace"] == "radiology"
    trained = store.manifest("runs/r1/train/model.pt")
    assert doc["spec"]["predictor"]["model"]["storageUri"] == "pvc://medopt-artifacts/runs/r1/train/model.pt"
    assert doc["metadata"]["annotations"]["medopt.io/artifact-sha256"] == trained.sha256
    assert out.metadata["model_key"] == "runs/r1/train/model.pt" and out.metadata["key"] == key
    assert store.manifest(key).parents == ("runs/r1/train/model.pt",)
    assert store.manifest(key).config == json.loads(config_json)  # the resolved config travels with the YAML
    model_spec = doc["spec"]["predictor"]["model"]
    assert model_spec["args"] == ["--artifact=runs/r1/train/model.pt", "--set=store.kind=local",
                                  "--set=store.root=/mnt/models"]
    assert model_spec["envFrom"] == [{"secretRef": {"name": "medopt-s3", "optional": True}}]


def test_deploy_step_prefers_the_compressed_model(tmp_path: Path) -> None:
    config_json, store, model, compressed = _setup(tmp_path)
    best = store.put_bytes("runs/r1/compress/int8/model.onnx", b"onnx", kind="model/onnx")
    StoreRef.from_manifest(store.uri, best).write(compressed.path)
    out = FakeArtifact(str(tmp_path / "out" / "isvc.yaml"))
    deploy_step(config_json, "r1", model, compressed, out)
    doc = yaml.safe_load(Path(out.path).read_text())
    assert doc["spec"]["predictor"]["model"]["storageUri"].endswith("runs/r1/compress/int8/model.onnx")
    assert out.metadata["sha256"] == store.manifest("runs/r1/deploy/inferenceservice.yaml").sha256


def test_deploy_step_reads_cluster_settings_from_the_config(tmp_path: Path) -> None:
    deploy = DeployConfig(name="lung-canary", deployment_mode="Serverless", scale_metric="rps", scale_target=20,
                          canary_traffic_percent=25, gpus=1, artifacts_pvc="scans", credentials_secret="s3-team")
    config_json, _, model, compressed = _setup(tmp_path, deploy)
    out = FakeArtifact(str(tmp_path / "out" / "isvc.yaml"))
    deploy_step(config_json, "r1", model, compressed, out)
    (doc,) = load_docs(Path(out.path).read_text())
    validate_manifest(doc)
    p = doc["spec"]["predictor"]
    assert doc["metadata"]["name"] == out.metadata["name"] == "lung-canary"
    assert doc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Serverless"
    assert (p["scaleMetric"], p["scaleTarget"], p["canaryTrafficPercent"]) == ("rps", 20, 25)
    assert p["model"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert p["model"]["storageUri"] == "pvc://scans/runs/r1/train/model.pt"
    assert p["model"]["envFrom"] == [{"secretRef": {"name": "s3-team", "optional": True}}]


def test_deploy_step_refuses_a_missing_model_ref(tmp_path: Path) -> None:
    config_json, _, model, compressed = _setup(tmp_path)
    Path(model.path).write_text("not json")
    with pytest.raises(RefError, match="not a medopt store reference"):
        deploy_step(config_json, "r1", model, compressed, FakeArtifact(str(tmp_path / "o")))


def test_storage_uri_for_s3_with_and_without_prefix() -> None:
    s3 = StoreConfig(kind="s3", endpoint="minio.medopt:9000", bucket="medopt", prefix="/team-a/")
    assert storage_uri(s3, "runs/r1/m.onnx", DeployConfig()) == "s3://medopt/team-a/runs/r1/m.onnx"
    bare = StoreConfig(kind="s3", endpoint="minio.medopt:9000", bucket="medopt")
    assert storage_uri(bare, "runs/r1/m.onnx", DeployConfig()) == "s3://medopt/runs/r1/m.onnx"
    assert server_args(s3, "runs/r1/m.onnx") == [
        "--artifact=runs/r1/m.onnx", "--set=store.kind=s3", "--set=store.endpoint=minio.medopt:9000",
        "--set=store.bucket=medopt", "--set=store.secure=true", "--set=store.prefix=/team-a/"]


@pytest.mark.parametrize("text, label", [("Lung_CT.v2", "lung-ct-v2"), ("42", "m-42"), ("a" * 80, "a" * 63),
                                         ("--x__", "x")])
def test_dns_name(text: str, label: str) -> None:
    assert dns_name(text) == label


def test_deploy_component_compiles_with_typed_io(tmp_path: Path) -> None:
    from kfp import compiler

    from components.deploy import deploy_component

    path = tmp_path / "deploy.yaml"
    compiler.Compiler().compile(deploy_component, str(path))
    spec = yaml.safe_load(path.read_text())
    comp = spec["components"]["comp-deploy-component"]
    assert set(comp["inputDefinitions"]["artifacts"]) == {"model", "compressed"}
    assert set(comp["inputDefinitions"]["parameters"]) == {"config_json", "run_id"}
    assert set(comp["outputDefinitions"]["artifacts"]) == {"inference_service"}
