"""Kubernetes API access for the steps that act on a cluster (KubeRay training, KServe apply).

Why one module: both steps must find their credentials the same way (the pod's ServiceAccount when running in a
cluster, else the user's kubeconfig) and turn the API's refusals into one line that names the missing RBAC verb,
instead of the client's multi-line dump of headers and body. The ``kubernetes`` package is imported on first use.
"""

from __future__ import annotations

import json
import os
from typing import Any

from medopt.errors import MedoptError

IN_CLUSTER_ENV = "KUBERNETES_SERVICE_HOST"


class KubeError(MedoptError, RuntimeError):
    """The Kubernetes API refused or failed a request; the message names the object and, for 403, the RBAC verb."""


class TransientKubeError(KubeError):
    """The API answered 429 or 5xx: worth another try later."""


class KubeConfigError(KubeError):
    """Neither an in-cluster ServiceAccount nor a kubeconfig file is available."""


def api_client() -> Any:
    """A ``kubernetes.client.ApiClient``: in-cluster when KUBERNETES_SERVICE_HOST is set, else from kubeconfig.

    A fresh ``Configuration`` is filled, so the client library's process-wide default is left untouched.

    Raises:
        KubeConfigError: no usable in-cluster token/CA or kubeconfig (KUBECONFIG or ~/.kube/config).
    """
    from kubernetes import client, config

    env = os.environ
    configuration = client.Configuration()
    try:
        if env.get(IN_CLUSTER_ENV):
            config.load_incluster_config(client_configuration=configuration)
        else:
            config.load_kube_config(config_file=env.get("KUBECONFIG") or None, client_configuration=configuration)
    except (config.ConfigException, OSError) as exc:
        where = "the in-cluster ServiceAccount" if env.get(IN_CLUSTER_ENV) else (
            f"kubeconfig {env.get('KUBECONFIG') or '~/.kube/config'}")
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise KubeConfigError(f"no Kubernetes credentials from {where}: {first} (run inside the cluster, or set "
                              "KUBECONFIG to a kubeconfig file)") from None
    return client.ApiClient(configuration)


def api_message(exc: Any) -> str:
    """The ``message`` of the API's Status body, else the HTTP reason, on one line."""
    text = ""
    try:
        text = str(json.loads(exc.body or "{}").get("message") or "")
    except (ValueError, AttributeError):
        text = str(exc.body or "")
    return " ".join((text or str(getattr(exc, "reason", "") or exc)).split())


def api_error(exc: Any, *, verb: str, resource: str, namespace: str, name: str | None = None) -> KubeError:
    """A one-line KubeError for an ``ApiException`` from ``verb`` on ``resource`` (e.g. ``rayjobs.ray.io``)."""
    target = f"{resource} {namespace}/{name}" if name else f"{resource} in namespace {namespace}"
    status = getattr(exc, "status", None)
    if status == 403:
        return KubeError(f"forbidden to {verb} {target}: the ServiceAccount needs RBAC verb '{verb}' on "
                         f"{resource} in namespace {namespace} ({api_message(exc)})")
    kind = TransientKubeError if status == 429 or (isinstance(status, int) and status >= 500) else KubeError
    return kind(f"cannot {verb} {target}: HTTP {status}: {api_message(exc)}")
