"""``deploy.apply: apply``: server-side-apply the rendered ServingRuntime and InferenceService, wait for Ready.

Why server-side apply: re-running a pipeline updates the same objects idempotently, and a field another manager owns
(an operator, a person with kubectl) is a conflict reported to the user instead of silently overwritten (force is
off). kubernetes-client 30.1 hard-codes ``application/merge-patch+json`` for custom-object patches, and its default
headers win over per-call ones, so applies go through a second ``ApiClient`` whose default Content-Type is
``application/apply-patch+yaml`` (a JSON body is valid YAML). Ready means the InferenceService's ``Ready`` condition
is True for the applied generation; its ``status.url`` is what the step records.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from medopt.errors import MedoptError
from medopt.kube import api_client, api_error, api_message

logger = logging.getLogger(__name__)

FIELD_MANAGER = "medopt"
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
PLURALS = {"InferenceService": "inferenceservices", "ServingRuntime": "servingruntimes"}


class DeployApplyError(MedoptError, RuntimeError):
    """An applied InferenceService did not become Ready in time, or an apply conflicted with another manager."""


@dataclass(frozen=True)
class Applied:
    """The InferenceService that became Ready and where it answers."""

    namespace: str
    name: str
    url: str | None


def _coordinates(doc: dict[str, Any]) -> tuple[str, str, str, str, str]:
    group, _, version = doc["apiVersion"].rpartition("/")
    kind = doc["kind"]
    if kind not in PLURALS:
        raise DeployApplyError(f"cannot apply kind {kind!r}: only {', '.join(PLURALS)}")
    return group, version, PLURALS[kind], doc["metadata"]["namespace"], doc["metadata"]["name"]


def apply_clients(api: Any) -> tuple[Any, Any]:
    """(CustomObjectsApi sending apply patches, plain CustomObjectsApi for reads), sharing ``api``'s configuration."""
    from kubernetes import client

    applier = client.ApiClient(api.configuration)
    applier.set_default_header("Content-Type", APPLY_CONTENT_TYPE)
    return client.CustomObjectsApi(applier), client.CustomObjectsApi(api)


def apply_object(applier: Any, doc: dict[str, Any]) -> dict[str, Any]:
    """Server-side-apply one object as field manager "medopt" (force off); returns the object the server holds.

    Raises:
        KubeError: refused (403 names the RBAC verb 'patch').
        DeployApplyError: a field is owned by another manager (409).
    """
    from kubernetes.client.exceptions import ApiException

    group, version, plural, namespace, name = _coordinates(doc)
    try:
        return applier.patch_namespaced_custom_object(group, version, namespace, plural, name, doc,
                                                      field_manager=FIELD_MANAGER, force=False)
    except ApiException as exc:
        if exc.status == 409:
            raise DeployApplyError(f"applying {doc['kind']} {namespace}/{name} conflicts with another field manager "
                                   f"({api_message(exc)}); change it there or delete the object") from None
        raise api_error(exc, verb="patch", resource=f"{plural}.{group}", namespace=namespace, name=name) from None


def ready(obj: dict[str, Any]) -> tuple[bool, str]:
    """Whether the InferenceService is Ready for its current generation, and else why not (reason: message)."""
    status = obj.get("status") or {}
    generation = (obj.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    cond = conditions.get("Ready")
    if generation is not None and observed is not None and observed < generation:
        return False, f"generation {generation} not yet observed (at {observed})"
    if cond is None:
        pending = next((c for c in conditions.values() if c.get("status") == "False"), None)
        cond = pending or {"reason": "NoReadyCondition", "message": "no Ready condition yet"}
    elif cond.get("status") == "True":
        return True, ""
    why = " ".join(str(cond.get("message") or "").split()) or "no message"
    return False, f"{cond.get('reason') or cond.get('type') or 'NotReady'}: {why}"


def wait_ready(reader: Any, doc: dict[str, Any], *, timeout_s: float, poll_s: float,
               clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> str | None:
    """Poll the InferenceService until Ready; return its ``status.url``.

    Raises:
        DeployApplyError: not Ready after ``timeout_s`` (with the Ready condition's reason and message).
        KubeError: a read was refused (403 names the RBAC verb 'get').
    """
    from kubernetes.client.exceptions import ApiException

    group, version, plural, namespace, name = _coordinates(doc)
    deadline, shown = clock() + timeout_s, ""
    while True:
        try:
            obj = reader.get_namespaced_custom_object(group, version, namespace, plural, name)
        except ApiException as exc:
            raise api_error(exc, verb="get", resource=f"{plural}.{group}", namespace=namespace, name=name) from None
        ok, why = ready(obj)
        if ok:
            return (obj.get("status") or {}).get("url")
        if why != shown:
            shown = why
            logger.info("InferenceService %s/%s not Ready: %s", namespace, name, why)
        remaining = deadline - clock()
        if remaining <= 0:
            raise DeployApplyError(f"InferenceService {namespace}/{name} not Ready after {timeout_s:g} s "
                                   f"(deploy.ready_timeout_s): {why}")
        sleep(min(poll_s, remaining))


def apply_and_wait(api: Any, docs: Sequence[dict[str, Any]], *, timeout_s: float, poll_s: float,
                   clock: Callable[[], float] = time.monotonic,
                   sleep: Callable[[float], None] = time.sleep) -> Applied:
    """Apply ``docs`` in order (the ServingRuntime before the InferenceService that selects it); wait for the last
    InferenceService to be Ready."""
    applier, reader = apply_clients(api)
    for doc in docs:
        apply_object(applier, doc)
        logger.info("applied %s %s/%s", doc["kind"], doc["metadata"]["namespace"], doc["metadata"]["name"])
    isvc = [d for d in docs if d["kind"] == "InferenceService"]
    if not isvc:
        raise DeployApplyError("nothing to wait for: no InferenceService among the applied objects")
    url = wait_ready(reader, isvc[-1], timeout_s=timeout_s, poll_s=poll_s, clock=clock, sleep=sleep)
    meta = isvc[-1]["metadata"]
    return Applied(namespace=meta["namespace"], name=meta["name"], url=url)


def apply_to_cluster(docs: Sequence[dict[str, Any]], *, timeout_s: float, poll_s: float) -> Applied:
    """``apply_and_wait`` with the in-cluster ServiceAccount or the kubeconfig (``medopt.kube.api_client``).

    Raises:
        KubeConfigError: no credentials; KubeError: refused; DeployApplyError: conflict or not Ready in time.
    """
    return apply_and_wait(api_client(), docs, timeout_s=timeout_s, poll_s=poll_s)

