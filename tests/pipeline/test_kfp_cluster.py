"""The pipeline compiled for a cluster, read back with the KFP SDK: every task carries what the config's kfp section
asks for, the parameters are typed with "not set" defaults, and caching can hit (no KFP run id on cached steps)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from kfp import components

from medopt.config import ConfigError, ExperimentConfig, load_config
from medopt.config.cluster import STEP_NAMES
from medopt.pipeline.cluster import compile_for_cluster
from medopt.pipeline.kfp_entry import CLUSTER_ENV
from medopt.pipeline.step_list import STEPS, step_named

REPO = Path(__file__).resolve().parents[2]
GPU_AND_PLACEMENT = [
    "kfp.resources.train.accelerator_count=2", "kfp.resources.train.accelerator_type=nvidia.com/mig-1g.10gb",
    "kfp.resources.train.node_selector={medopt.io/pool: gpu}",
    "kfp.resources.train.tolerations=[{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]",
    "kfp.resources.bench.retries=3", "kfp.pipeline_root=s3://kfp-artifacts/medopt",
]


class Compiled:
    """A compiled package as the KFP SDK loads it: the PipelineSpec and the Kubernetes platform spec, as dicts."""

    def __init__(self, path: Path) -> None:
        loaded = components.load_component_from_file(str(path))
        self.inputs = loaded.component_spec.inputs
        self.spec: dict[str, Any] = json_format.MessageToDict(loaded.pipeline_spec)
        self.k8s: dict[str, Any] = json_format.MessageToDict(loaded.platform_spec)["platforms"]["kubernetes"][
            "deploymentSpec"]["executors"]

    def task(self, step: str) -> dict[str, Any]:
        return self.spec["root"]["dag"]["tasks"][f"{step}-component"]

    def container(self, step: str) -> dict[str, Any]:
        return self.spec["deploymentSpec"]["executors"][f"exec-{step}-component"]["container"]

    def platform(self, step: str) -> dict[str, Any]:
        return self.k8s[f"exec-{step}-component"]


@pytest.fixture(scope="module")
def cluster_cfg() -> ExperimentConfig:
    return load_config(REPO / "configs" / "cluster.yaml", GPU_AND_PLACEMENT)


@pytest.fixture(scope="module")
def compiled(cluster_cfg: ExperimentConfig, tmp_path_factory: pytest.TempPathFactory) -> Compiled:
    return Compiled(compile_for_cluster(tmp_path_factory.mktemp("kfp") / "p.yaml", cluster_cfg))


def test_the_kfp_section_names_every_step() -> None:
    assert STEP_NAMES == tuple(s.name for s in STEPS)


def test_typed_parameters_with_not_set_defaults(compiled: Compiled, cluster_cfg: ExperimentConfig) -> None:
    types = {name: (spec.type, spec.default) for name, spec in compiled.inputs.items()}
    assert types.pop("config_yaml")[0] == "String"
    assert types == {"model_name": ("String", ""), "epochs": ("Integer", 0), "data_source": ("String", ""),
                     "seed": ("Integer", -1), "run_id": ("String", "")}
    default = compiled.inputs["config_yaml"].default  # the compiled config, one line of JSON, loads back the same
    assert "\n" not in default and ExperimentConfig.model_validate_json(default) == cluster_cfg


def test_pipeline_root(compiled: Compiled) -> None:
    assert compiled.spec["defaultPipelineRoot"] == "s3://kfp-artifacts/medopt"


@pytest.mark.parametrize("step", STEP_NAMES)
def test_each_task_gets_its_resources_retries_and_image(compiled: Compiled, cluster_cfg: ExperimentConfig,
                                                        step: str) -> None:
    want = cluster_cfg.kfp.resources.for_step(step)
    container, task = compiled.container(step), compiled.task(step)
    res = container["resources"]
    assert (res["resourceCpuRequest"], res["resourceCpuLimit"]) == (want.cpu_request, want.cpu_limit)
    assert (res["resourceMemoryRequest"], res["resourceMemoryLimit"]) == (want.memory_request, want.memory_limit)
    assert task.get("retryPolicy", {}).get("maxRetryCount", 0) == want.retries
    assert {"name": CLUSTER_ENV, "value": "1"} in container["env"]
    if step == "train":
        assert res["accelerator"]["resourceType"] == "nvidia.com/mig-1g.10gb"
        assert res["accelerator"]["resourceCount"] == "2"
        assert container["image"] == cluster_cfg.kfp.gpu_image
    else:
        assert "accelerator" not in res and container["image"] == cluster_cfg.kfp.image


def test_defaults_give_train_more_and_bench_no_retries() -> None:
    res = ExperimentConfig().kfp.resources
    assert res.train.cpu_request == "2" and res.train.memory_limit == "8Gi" and res.train.accelerator_count == 0
    assert res.deploy.memory_request == "256Mi" and res.bench.retries == 0 and res.data.retries == 2


@pytest.mark.parametrize("step", STEP_NAMES)
def test_each_pod_gets_the_secret_labels_and_placement(compiled: Compiled, step: str) -> None:
    platform = compiled.platform(step)
    [secret] = platform["secretAsEnv"]
    assert secret["secretName"] == "medopt-s3"
    assert {(k["secretKey"], k["envVar"]) for k in secret["keyToEnv"]} == {
        ("AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"), ("AWS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY")}
    assert platform["podMetadata"]["labels"] == {"medopt.io/role": "pipeline", "medopt.io/s3-access": "true"}
    assert platform["securityContext"] == {"runAsUser": "10001", "runAsGroup": "10001", "runAsNonRoot": True}
    if step == "train":
        assert platform["nodeSelector"]["labels"] == {"medopt.io/pool": "gpu"}
        assert platform["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    else:
        assert "nodeSelector" not in platform and "tolerations" not in platform


@pytest.mark.parametrize("step", STEP_NAMES)
def test_cached_steps_never_see_the_kfp_run_id(compiled: Compiled, step: str) -> None:
    """Cache keys are the input values: the run's id on a cached step would make every run a cache miss."""
    task = compiled.task(step)
    params = task["inputs"]["parameters"]
    assert params["run_id"] == {"componentInputParameter": "run_id"}  # the user's value, "" unless set
    per_run = step_named(step).per_run
    assert task["cachingOptions"].get("enableCache", False) is (not per_run)
    if per_run:
        assert params["job_id"] == {"runtimeValue": {"constant": "{{$.pipeline_job_uuid}}"}}
    else:
        assert "job_id" not in params and "{{$" not in str(params)
    assert {s for s in STEP_NAMES if not step_named(s).per_run} == {"data", "train", "compress", "federate"}


def test_caching_off_turns_every_task_off(tmp_path: Path) -> None:
    compiled = Compiled(compile_for_cluster(tmp_path / "p.yaml", load_config(None, ["kfp.caching=false"])))
    assert all(not compiled.task(s)["cachingOptions"].get("enableCache", False) for s in STEP_NAMES)


def test_evaluate_outputs_metrics_and_classification_metrics(compiled: Compiled) -> None:
    outputs = compiled.spec["components"]["comp-evaluate-component"]["outputDefinitions"]["artifacts"]
    assert outputs["metrics"]["artifactType"]["schemaTitle"] == "system.Metrics"
    assert outputs["classification"]["artifactType"]["schemaTitle"] == "system.ClassificationMetrics"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("kfp.resources.train.cpu_request=8", "exceeds cpu_limit"),
        ("kfp.resources.data.memory_request=9Gi", "exceeds memory_limit"),
        ("kfp.resources.data.memory_limit=1.5Gi", "memory_limit"),
        ("kfp.resources.data.cpu_limit=2k", "cpu_limit"),
        ("kfp.resources.publish.retries=1", "publish: unknown key"),
        ("kfp.resources.train.tolerations=[{operator: Equal, value: x}]", "without a key"),
        ("kfp.resources.train.node_selector={'bad key': x}", "label key"),
        ("kfp.pod_labels={medopt.io/role: 'no spaces'}", "label value"),
        ("kfp.pipeline_root=file:///tmp/kfp", "pipeline_root"),
        ("kfp.store={kind: local}", "must be an S3 store"),
        ("kfp.resources.train.accelerator_count=-1", "accelerator_count"),
    ],
)
def test_bad_kfp_settings_fail_in_one_line(override: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_config(None, [override])


def test_a_step_override_keeps_that_steps_other_defaults() -> None:
    train = load_config(None, ["kfp.resources.train.accelerator_count=1"]).kfp.resources.train
    assert (train.accelerator_count, train.cpu_request, train.memory_limit) == (1, "2", "8Gi")
