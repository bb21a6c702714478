"""Every flow medopt needs is allowed by the rendered NetworkPolicies, and pods without the labels are denied.

Pods are built from the rendered manifests' pod-template labels (plus the labels the operators add: KubeRay's
``ray.io/is-ray-node``), the pipeline pods from the KFP config's labels; pods of other namespaces carry the labels
of their standard installs (KFP, Knative, Istio, KubeRay). Proven with the evaluator in tests/k8s/netpol.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from netpol import Address, Pod, allowed
from render import helm, kustomize

from medopt.config import ExperimentConfig, config_from_dict
from medopt.train.kuberay_job import build_rayjob

NS = "medopt"
KIND_APISERVER = Address("172.18.0.3")  # a control-plane node of kind's Docker network
INTERNET = Address("93.184.216.34")


def _template_labels(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


@pytest.fixture(scope="module")
def world() -> dict[str, Any]:
    docs = kustomize("local-kind") + helm("transformer")
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    job = _template_labels(docs, "RayJob", "medopt-train")["spec"]
    minio = _template_labels(docs, "Deployment", "minio")["spec"]["template"]["metadata"]["labels"]
    isvc = _template_labels(docs, "InferenceService", "medopt")["spec"]
    ray_node = {"ray.io/is-ray-node": "yes"}
    kfp_labels = dict(ExperimentConfig().kfp.pod_labels)
    step_cfg = config_from_dict({"store": {"kind": "s3", "endpoint": "minio.medopt.svc:9000", "bucket": "medopt"},
                                 "train": {"backend": "kuberay"}})
    step_job = build_rayjob(step_cfg, dataset_key="runs/r1/data/dataset.npz", prefix="runs/r1")["spec"]
    pods = {
        "minio": Pod(NS, minio, "minio"),
        "head": Pod(NS, {**job["rayClusterSpec"]["headGroupSpec"]["template"]["metadata"]["labels"], **ray_node,
                         "ray.io/node-type": "head"}, "head"),
        "worker": Pod(NS, {**job["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["metadata"]["labels"],
                           **ray_node, "ray.io/node-type": "worker"}, "worker"),
        "submitter": Pod(NS, job["submitterPodTemplate"]["metadata"]["labels"], "submitter"),
        "predictor": Pod(NS, isvc["predictor"]["labels"], "predictor"),
        "transformer": Pod(NS, isvc["transformer"]["labels"], "transformer"),
        "pipeline": Pod(NS, kfp_labels, "pipeline-step"),
        "pipeline-kubeflow": Pod("kubeflow", kfp_labels, "pipeline-step"),
        "ml-pipeline": Pod("kubeflow", {"app": "ml-pipeline"}, "ml-pipeline"),
        "metadata": Pod("kubeflow", {"component": "metadata-grpc-server"}, "metadata-grpc"),
        "activator": Pod("knative-serving", {"app": "activator"}, "activator"),
        "autoscaler": Pod("knative-serving", {"app": "autoscaler"}, "autoscaler"),
        "gateway": Pod("istio-system", {"istio": "ingressgateway"}, "istio-ingressgateway"),
        "operator": Pod("ray-system", {"app.kubernetes.io/name": "kuberay-operator"}, "kuberay-operator"),
        "dns": Pod("kube-system", {"k8s-app": "kube-dns"}, "coredns"),
        "step-head": Pod(NS, {**step_job["rayClusterSpec"]["headGroupSpec"]["template"]["metadata"]["labels"],
                              **ray_node}, "step-rayjob-head"),
        "step-worker": Pod(NS, {**step_job["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["metadata"]["labels"],
                                **ray_node}, "step-rayjob-worker"),
        "step-submitter": Pod(NS, step_job["submitterPodTemplate"]["metadata"]["labels"], "step-rayjob-submitter"),
        "unlabelled": Pod(NS, {}, "unlabelled"),
        "stranger": Pod("default", {}, "stranger"),
    }
    return {"policies": policies, "pods": pods}


REQUIRED = [
    ("transformer", "predictor", 8080), ("transformer", "predictor", 8012),
    ("gateway", "predictor", 8080), ("gateway", "predictor", 8081), ("gateway", "transformer", 8080),
    ("activator", "predictor", 8012), ("autoscaler", "predictor", 9090),
    ("activator", "transformer", 8012), ("autoscaler", "transformer", 9090),
    ("pipeline", "minio", 9000), ("pipeline-kubeflow", "minio", 9000),
    ("pipeline", "ml-pipeline", 8887), ("pipeline", "ml-pipeline", 8888), ("pipeline", "metadata", 8080),
    ("pipeline", KIND_APISERVER, 6443),
    ("operator", "head", 8265), ("submitter", "head", 8265), ("pipeline", "head", 8265), ("pipeline", "head", 10001),
    ("worker", "head", 6379), ("head", "worker", 6379), ("worker", "head", 23456), ("head", "worker", 23456),
    ("worker", "minio", 9000), ("head", "minio", 9000), ("predictor", "minio", 9000), ("transformer", "minio", 9000),
    # the RayJob that the train step creates (train.backend: kuberay)
    ("step-submitter", "step-head", 8265), ("operator", "step-head", 8265), ("step-worker", "step-head", 6379),
    ("step-head", "step-worker", 40000), ("step-head", "minio", 9000), ("step-worker", "minio", 9000),
]
DENIED = [
    ("unlabelled", "minio", 9000), ("unlabelled", "head", 8265), ("unlabelled", "predictor", 8080),
    ("stranger", "predictor", 8080), ("stranger", "minio", 9000), ("stranger", "head", 8265),
    ("pipeline", INTERNET, 443), ("predictor", INTERNET, 443), ("worker", INTERNET, 443),
    ("predictor", "head", 8265), ("submitter", "minio", 9000), ("operator", "head", 6379),
    ("gateway", "minio", 9000), ("activator", "predictor", 8080), ("pipeline", "predictor", 9090),
]


def _resolve(world: dict[str, Any], name: Any) -> Any:
    return world["pods"][name] if isinstance(name, str) else name


@pytest.mark.parametrize("src, dst, port", REQUIRED, ids=[f"{s}->{d}:{p}" for s, d, p in REQUIRED])
def test_required_flow_is_allowed(world: dict[str, Any], src: Any, dst: Any, port: int) -> None:
    assert allowed(world["policies"], _resolve(world, src), _resolve(world, dst), port)


@pytest.mark.parametrize("src, dst, port", DENIED, ids=[f"{s}->{d}:{p}" for s, d, p in DENIED])
def test_other_flows_are_denied(world: dict[str, Any], src: Any, dst: Any, port: int) -> None:
    assert not allowed(world["policies"], _resolve(world, src), _resolve(world, dst), port)


def test_every_medopt_pod_resolves_names(world: dict[str, Any]) -> None:
    pods = world["pods"]
    for name in ("minio", "head", "worker", "submitter", "predictor", "transformer", "pipeline", "unlabelled"):
        assert allowed(world["policies"], pods[name], pods["dns"], 53, "UDP"), name
        assert not allowed(world["policies"], pods[name], pods["dns"], 80), name


def test_cloud_overlay_keeps_the_api_server_narrow() -> None:
    policies = [d for d in kustomize("cloud") if d["kind"] == "NetworkPolicy"]
    cidrs = [peer["ipBlock"]["cidr"] for p in policies for r in p["spec"].get("egress", [])
             for peer in r.get("to", []) if "ipBlock" in peer]
    assert cidrs and all(not c.endswith("/0") for c in cidrs), cidrs
    assert all(r.get("to") for p in policies for r in p["spec"].get("egress", [])), "an egress rule open to all peers"


def test_evaluator_is_not_vacuous(world: dict[str, Any]) -> None:
    """Without the policies every flow passes; without default deny the unlabelled pods would get through."""
    pods = world["pods"]
    assert allowed([], pods["unlabelled"], pods["minio"], 9000)
    minio_only = [p for p in world["policies"] if p["metadata"]["name"] == "minio-ingress"]
    assert allowed(minio_only, pods["pipeline"], pods["minio"], 9000)
    assert not allowed(minio_only, pods["unlabelled"], pods["minio"], 9000)
    assert not allowed(minio_only, pods["pipeline"], pods["minio"], 9001)
