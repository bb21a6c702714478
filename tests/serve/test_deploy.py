"""The KFP deploy step: picks the chosen model, writes the InferenceService YAML to its output and to the store."""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from medopt.config import DeployConfig, ExperimentConfig, ServeConfig, StoreConfig, config_from_json, load_config
from medopt.models.model_file import load_model_file
from medopt.pipeline.refs import RefError, StoreRef
from medopt.pipeline.steps import deploy_step
from medopt.serve.__main__ import _parser
from medopt.serve.artifact import load_served_model
from medopt.serve.deploy import (
    MODEL_DIR,
    dns_name,
    render_inference_service,
    render_serving_runtime,
    server_args,
    storage_uri,
)
from medopt.store import ArtifactCorrupted, ArtifactNotFound, LocalStore, open_store

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "k8s"))
from kubeschema import load_docs, validate_manifest  # noqa: E402
from serve_fixtures import CLASSES, MODEL_KEY, Stored  # noqa: E402

LOCAL_ARGS = ["--set=store.kind=local", f"--set=store.root={MODEL_DIR}"]


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
    key = deploy_step(config_from_json(config_json), "r1", model, compressed, out)
    assert key == "runs/r1/deploy/inferenceservice.yaml"
    text = Path(out.path).read_text()
    assert store.get_bytes(key).decode() == text
    (doc,) = load_docs(text)
    validate_manifest(doc)
    assert doc["metadata"]["name"] == "lung-ct-v2" and doc["metadata"]["namespace"] == "radiology"
    trained = store.manifest("runs/r1/train/model.pt")
    assert doc["spec"]["predictor"]["model"]["storageUri"] == "pvc://medopt-artifacts/runs/r1/train"
    assert doc["metadata"]["annotations"]["medopt.io/artifact-sha256"] == trained.sha256
    assert out.metadata["model_key"] == "runs/r1/train/model.pt" and out.metadata["key"] == key
    assert store.manifest(key).parents == ("runs/r1/train/model.pt",)
    assert store.manifest(key).config == json.loads(config_json)  # the resolved config travels with the YAML
    model_spec = doc["spec"]["predictor"]["model"]
    assert model_spec["args"] == ["--artifact=model.pt", *LOCAL_ARGS]
    assert "env" not in model_spec and "envFrom" not in model_spec


def test_deploy_step_prefers_the_compressed_model(tmp_path: Path) -> None:
    config_json, store, model, compressed = _setup(tmp_path)
    best = store.put_bytes("runs/r1/compress/int8/model.onnx", b"onnx", kind="model/onnx")
    StoreRef.from_manifest(store.uri, best).write(compressed.path)
    out = FakeArtifact(str(tmp_path / "out" / "isvc.yaml"))
    deploy_step(config_from_json(config_json), "r1", model, compressed, out)
    doc = yaml.safe_load(Path(out.path).read_text())
    model_spec = doc["spec"]["predictor"]["model"]
    assert model_spec["storageUri"] == "pvc://medopt-artifacts/runs/r1/compress/int8"
    assert model_spec["args"] == ["--artifact=model.onnx", *LOCAL_ARGS]
    assert out.metadata["model_key"] == "runs/r1/compress/int8/model.onnx"
    assert out.metadata["sha256"] == store.manifest("runs/r1/deploy/inferenceservice.yaml").sha256


def test_deploy_step_reads_cluster_settings_from_the_config(tmp_path: Path) -> None:
    deploy = DeployConfig(name="lung-canary", deployment_mode="Serverless", scale_metric="rps", scale_target=20,
                          canary_traffic_percent=25, gpus=1, container_concurrency=2, artifacts_pvc="scans", credentials_secret="s3-team")
    config_json, _, model, compressed = _setup(tmp_path, deploy)
    out = FakeArtifact(str(tmp_path / "out" / "isvc.yaml"))
    deploy_step(config_from_json(config_json), "r1", model, compressed, out)
    (doc,) = load_docs(Path(out.path).read_text())
    validate_manifest(doc)
    p = doc["spec"]["predictor"]
    assert doc["metadata"]["name"] == out.metadata["name"] == "lung-canary"
    assert doc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Serverless"
    assert (p["scaleMetric"], p["scaleTarget"], p["canaryTrafficPercent"]) == ("rps", 20, 25)
    assert p["containerConcurrency"] == 2  # what `medopt bench plan` suggests; the CRD schema accepts it
    assert p["model"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert p["model"]["storageUri"] == "pvc://scans/runs/r1/train"
    assert "envFrom" not in p["model"]  # the Secret is the ServiceAccount's, for the storage initializer only


def test_deploy_step_adds_the_separate_transformer_when_asked(tmp_path: Path) -> None:
    config_json, _, model, compressed = _setup(tmp_path, DeployConfig(transformer=True))
    out = FakeArtifact(str(tmp_path / "out" / "isvc.yaml"))
    deploy_step(config_from_json(config_json), "r1", model, compressed, out)
    (doc,) = load_docs(Path(out.path).read_text())
    validate_manifest(doc)
    (container,) = doc["spec"]["transformer"]["containers"]
    assert container["command"] == ["python", "-m", "medopt.serve.transformer"]
    assert {"name": "STORAGE_URI", "value": doc["spec"]["predictor"]["model"]["storageUri"]} in container["env"]
    assert "nvidia.com/gpu" not in container["resources"]["limits"]


def test_deploy_step_refuses_a_missing_model_ref(tmp_path: Path) -> None:
    config_json, _, model, compressed = _setup(tmp_path)
    Path(model.path).write_text("not json")
    with pytest.raises(RefError, match="not a medopt store reference"):
        deploy_step(config_from_json(config_json), "r1", model, compressed, FakeArtifact(str(tmp_path / "o")))


def test_storage_uri_is_the_artifact_folder() -> None:
    s3 = StoreConfig(kind="s3", endpoint="minio.medopt:9000", bucket="medopt", prefix="/team-a/")
    assert storage_uri(s3, "runs/r1/m.onnx", DeployConfig()) == "s3://medopt/team-a/runs/r1/"
    assert storage_uri(s3, "m.onnx", DeployConfig()) == "s3://medopt/team-a/"
    bare = StoreConfig(kind="s3", endpoint="minio.medopt:9000", bucket="medopt")
    assert storage_uri(bare, "runs/r1/m.onnx", DeployConfig()) == "s3://medopt/runs/r1/"
    assert storage_uri(bare, "m.onnx", DeployConfig()) == "s3://medopt/"
    local = StoreConfig(kind="local", root="/data/store")
    assert storage_uri(local, "runs/r1/m.onnx", DeployConfig(artifacts_pvc="scans")) == "pvc://scans/runs/r1"
    assert storage_uri(local, "m.onnx", DeployConfig(artifacts_pvc="scans")) == "pvc://scans"
    assert server_args("runs/r1/m.onnx") == ["--artifact=m.onnx", *LOCAL_ARGS]


def _secret_refs(node: Any) -> list[str]:
    """Every env/envFrom/secret reference anywhere below ``node``."""
    if isinstance(node, dict):
        found = [k for k in node if k in ("env", "envFrom", "secretRef", "secretKeyRef")]
        return found + [r for v in node.values() for r in _secret_refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _secret_refs(v)]
    return []


def test_s3_inference_service_downloads_the_folder_once_and_holds_no_secret() -> None:
    s3 = StoreConfig(kind="s3", endpoint="minio.medopt.svc:9000", bucket="medopt", prefix="team-a")
    key = "runs/r7/compress/int8-static/model.onnx"
    doc = render_inference_service(DeployConfig(credentials_secret="s3-team"), name="lung", uri=storage_uri(
        s3, key, DeployConfig()), args=server_args(key))
    validate_manifest(doc)
    predictor = doc["spec"]["predictor"]
    model = predictor["model"]
    assert model["storageUri"] == "s3://medopt/team-a/runs/r7/compress/int8-static/"
    assert model["args"] == ["--artifact=model.onnx", "--set=store.kind=local", "--set=store.root=/mnt/models"]
    assert _secret_refs(predictor) == []
    assert "s3-team" not in yaml.safe_dump(doc)
    # the storage initializer runs in this pod and reaches MinIO as the serving ServiceAccount
    assert predictor["labels"]["medopt.io/s3-access"] == "true" and predictor["serviceAccountName"] == "medopt-serving"


def _initialized_model_dir(stored: Stored, tmp_path: Path, kind: str) -> tuple[Path, str, list[str]]:
    """A cluster store holding one artifact, the folder KServe's storage initializer fills from ``storageUri``, and
    the predictor's full command line (runtime args + InferenceService args, /mnt/models mapped to that folder)."""
    from medopt.compress.stage import serving_meta

    cluster = LocalStore(tmp_path / "claim")  # the PVC holding the store root
    bundle = load_model_file(stored.root / MODEL_KEY)
    if kind == "onnx":
        key = "runs/r1/compress/int8-static/model.onnx"
        cluster.put_file(key, stored.onnx_path, kind="model/onnx", meta={"recipe": "fp32", **serving_meta(bundle)})
    else:
        key = "runs/r1/train/model.pt"
        cluster.put_file(key, stored.root / MODEL_KEY, kind="model/pytorch")
    cluster.put_bytes("runs/r1/train/history.json", b"{}", kind="history")  # a sibling in the train folder
    uri = storage_uri(StoreConfig(kind="local"), key, DeployConfig(artifacts_pvc="claim"))
    assert uri.startswith("pvc://claim/")
    model_dir = tmp_path / "mnt-models"
    shutil.copytree(cluster.root / uri.removeprefix("pvc://claim/"), model_dir)
    runtime = render_serving_runtime(DeployConfig(), ServeConfig())["spec"]["containers"][0]["args"]
    isvc = render_inference_service(DeployConfig(), name="lung", uri=uri, args=server_args(key))
    argv = [a.replace("{{.Name}}", "lung") for a in runtime] + isvc["spec"]["predictor"]["model"]["args"]
    return model_dir, cluster.manifest(key).sha256, [a.replace(MODEL_DIR, str(model_dir)) for a in argv]


@pytest.mark.parametrize("kind", ["onnx", "torch"])
def test_server_loads_verified_artifact_from_the_initialized_folder(stored: Stored, tmp_path: Path,
                                                                    kind: str) -> None:
    torch.set_num_threads(1)
    model_dir, sha, argv = _initialized_model_dir(stored, tmp_path, kind)
    name = "model.onnx" if kind == "onnx" else "model.pt"
    assert sorted(p.name for p in model_dir.iterdir()) == sorted([name, f"{name}.manifest.json"] +
                                                                 (["history.json", "history.json.manifest.json"]
                                                                  if kind == "torch" else []))
    args = _parser().parse_args(argv)  # the real command line of `python -m medopt.serve`
    store = open_store(load_config(None, args.overrides).store)
    assert isinstance(store, LocalStore) and store.root == model_dir.resolve() and args.artifact == name

    def load() -> Any:
        return load_served_model(store, args.artifact, name=args.model_name, runtime="auto", threads=1, max_rows=4,
                                 workdir=tmp_path / "work")

    served = load()
    assert (served.runtime, served.info.sha256, served.info.class_names) == (kind, sha, CLASSES)
    x = np.random.default_rng(0).standard_normal((2, 1, 16, 16)).astype(np.float32)
    with torch.inference_mode():
        expected = load_model_file(stored.root / MODEL_KEY).model.eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(served.runner(x), expected, atol=1e-4)
    blob = model_dir / name
    blob.write_bytes(blob.read_bytes()[:-1] + bytes([blob.read_bytes()[-1] ^ 1]))  # one flipped bit
    with pytest.raises(ArtifactCorrupted, match="sha256"):
        load()
    (model_dir / f"{name}.manifest.json").unlink()  # a storageUri naming only the file would bring no manifest
    with pytest.raises(ArtifactNotFound, match=name):
        load()


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
    assert set(comp["inputDefinitions"]["parameters"]) == {"config_yaml", "model_name", "epochs", "data_source", "seed",
                                                          "run_id", "job_id"}
    assert set(comp["outputDefinitions"]["artifacts"]) == {"inference_service"}
