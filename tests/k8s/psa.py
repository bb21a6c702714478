"""A small evaluator of Pod Security Standards "restricted" (baseline rules included) over rendered manifests.

Why here: the namespace enforces ``restricted`` and there is no API server to reject a pod offline. ``pod_templates``
finds every pod a manifest will create — including the ones an operator creates from it: KubeRay's head, workers and
job submitter (KubeRay's default submitter has no securityContext, so a RayJob without ``submitterPodTemplate``
fails), and KServe's predictor, transformer and storage-initializer (the init container comes from the
ClusterStorageContainer when one covers the URI, else KServe's default, which has no securityContext). Knative's
queue-proxy is Knative's to configure (``secure-pod-defaults``) and is not modelled.
"""

from __future__ import annotations

from typing import Any

ALLOWED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected",
                   "secret"}
SAFE_SYSCTLS = {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
                "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
                "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
                "net.ipv4.tcp_keepalive_probes"}
KSERVE_DEFAULT_INITIALIZER = {"name": "storage-initializer", "image": "kserve/storage-initializer"}  # no securityContext
KUBERAY_DEFAULT_SUBMITTER = {"name": "ray-job-submitter", "image": "(the RayJob's head image)"}  # no securityContext
PodTemplate = tuple[str, dict[str, Any]]


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod.get("containers", []), *pod.get("ephemeralContainers", [])]


def container_violations(c: dict[str, Any], pod_sc: dict[str, Any] | None = None) -> list[str]:
    """Restricted rules of one container; pod-level runAsNonRoot/seccomp count when the container does not set them."""
    pod_sc = pod_sc or {}
    sc = c.get("securityContext") or {}
    name = c.get("name", "?")
    out = []
    if sc.get("privileged"):
        out.append(f"{name}: privileged")
    if sc.get("allowPrivilegeEscalation") is not False:
        out.append(f"{name}: allowPrivilegeEscalation must be false")
    caps = sc.get("capabilities") or {}
    if "ALL" not in caps.get("drop", []):
        out.append(f"{name}: capabilities must drop ALL")
    if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
        out.append(f"{name}: adds capabilities {sorted(set(caps['add']) - {'NET_BIND_SERVICE'})}")
    non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
    if non_root is not True:
        out.append(f"{name}: runAsNonRoot must be true (pod or container)")
    if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
        out.append(f"{name}: runAsUser 0")
    seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
    if seccomp not in ("RuntimeDefault", "Localhost"):
        out.append(f"{name}: seccompProfile must be RuntimeDefault or Localhost (pod or container)")
    if sc.get("procMount", "Default") != "Default":
        out.append(f"{name}: procMount {sc['procMount']}")
    if (sc.get("appArmorProfile") or {}).get("type") == "Unconfined":
        out.append(f"{name}: appArmor Unconfined")
    if any(p.get("hostPort") for p in c.get("ports", [])):
        out.append(f"{name}: hostPort")
    return out


def pod_violations(pod: dict[str, Any]) -> list[str]:
    """Every restricted-profile violation of one pod spec (empty: the pod is admitted)."""
    out = [f"pod: {f}" for f in ("hostNetwork", "hostPID", "hostIPC") if pod.get(f)]
    sc = pod.get("securityContext") or {}
    if sc.get("runAsNonRoot") is False:
        out.append("pod: runAsNonRoot false")
    if (sc.get("seccompProfile") or {}).get("type") == "Unconfined":
        out.append("pod: seccomp Unconfined")
    for s in sc.get("sysctls", []):
        if s["name"] not in SAFE_SYSCTLS:
            out.append(f"pod: unsafe sysctl {s['name']}")
    for v in pod.get("volumes", []):
        kinds = set(v) - {"name"}
        if kinds - ALLOWED_VOLUMES:
            out.append(f"volume {v['name']}: type {sorted(kinds - ALLOWED_VOLUMES)} not allowed")
    containers = _containers(pod)
    if not containers:
        out.append("pod: no containers")
    for c in containers:
        out += container_violations(c, sc)
    return out


def _isvc_pods(doc: dict[str, Any], storage: dict[str, Any] | None) -> list[PodTemplate]:
    name = doc["metadata"]["name"]
    out = []
    for component in ("predictor", "transformer", "explainer"):
        spec = doc["spec"].get(component)
        if not spec:
            continue
        pod = {k: v for k, v in spec.items() if k not in ("model", "minReplicas", "maxReplicas", "scaleMetric",
                                                          "scaleTarget", "containerConcurrency",
                                                          "canaryTrafficPercent", "labels", "annotations")}
        containers = list(spec.get("containers", []))
        if "model" in spec:
            containers.insert(0, {"name": "kserve-container", **spec["model"]})
        uris = [c.get("storageUri", "") for c in containers] + [
            e.get("value", "") for c in containers for e in c.get("env", []) if e.get("name") == "STORAGE_URI"]
        init = []
        if any(u.startswith("s3://") for u in uris):
            init = [storage if storage is not None else KSERVE_DEFAULT_INITIALIZER]
        pod["containers"] = containers
        pod["initContainers"] = [*pod.get("initContainers", []), *init]
        out.append((f"InferenceService {name} {component}", pod))
    return out


def _ray_pods(kind: str, name: str, cluster: dict[str, Any]) -> list[PodTemplate]:
    out = [(f"{kind} {name} head", cluster["headGroupSpec"]["template"]["spec"])]
    out += [(f"{kind} {name} workers {g['groupName']}", g["template"]["spec"]) for g in cluster["workerGroupSpecs"]]
    return out


def pod_templates(doc: dict[str, Any], storage: dict[str, Any] | None = None) -> list[PodTemplate]:
    """(where, pod spec) for every pod the object leads to; ``storage``: the ClusterStorageContainer's container."""
    kind, name, spec = doc["kind"], doc["metadata"]["name"], doc.get("spec", {})
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        return [(f"{kind} {name}", spec["template"]["spec"])]
    if kind == "CronJob":
        return [(f"{kind} {name}", spec["jobTemplate"]["spec"]["template"]["spec"])]
    if kind == "Pod":
        return [(f"Pod {name}", spec)]
    if kind == "RayCluster":
        return _ray_pods(kind, name, spec)
    if kind == "RayJob":
        submitter = (spec.get("submitterPodTemplate") or {}).get("spec") or {"containers": [KUBERAY_DEFAULT_SUBMITTER]}
        return [*_ray_pods(kind, name, spec["rayClusterSpec"]), (f"RayJob {name} submitter", submitter)]
    if kind == "InferenceService":
        return _isvc_pods(doc, storage)
    return []


def container_templates(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Containers that other objects' pods are built from: ServingRuntime and ClusterStorageContainer."""
    if doc["kind"] == "ServingRuntime":
        return [(f"ServingRuntime {doc['metadata']['name']}", c) for c in doc["spec"]["containers"]]
    if doc["kind"] == "ClusterStorageContainer":
        return [(f"ClusterStorageContainer {doc['metadata']['name']}", doc["spec"]["container"])]
    return []
