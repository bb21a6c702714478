"""``train.backend: kuberay``: create the RayJob, follow it to the end, read the trained model back from the store.

The lifecycle (create, poll ``status.jobDeploymentStatus`` / ``status.jobStatus``, copy the submitter pod's log into
the step log, delete) runs against ``CustomObjectsApi`` / ``CoreV1Api`` objects handed in, so it is exercised through
the real client's requests without a cluster. The RayJob itself comes from ``kuberay_job.build_rayjob``; its driver
(``kuberay_entry``) stores ``<prefix>/train/{model.pt,history.json,checkpoint.pt}`` exactly as the 'ray' backend in
this process would, and ``read_trained`` picks those manifests up.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medopt.config import ExperimentConfig
from medopt.errors import MedoptError
from medopt.kube import KubeError, TransientKubeError, api_client, api_error
from medopt.store import ArtifactStore, Manifest
from medopt.train.history import HistoryError
from medopt.train.kuberay_job import (
    EPOCH_MARKER, GROUP, PLURAL, SUBMITTER_CONTAINER, VERSION, build_rayjob, check_store,
)
from medopt.train.tracker import FitResult

logger = logging.getLogger(__name__)

EpochCallback = Callable[[int, dict[str, Any]], None]
LineSink = Callable[[str], None]
RESOURCE = "rayjobs.ray.io"
MAX_READ_ERRORS = 3
"""Consecutive failed status reads (5xx, connection reset) tolerated before the step gives up."""


class KubeRayError(MedoptError, RuntimeError):
    """The RayJob failed, timed out, vanished, or left no trained model in the store."""


@dataclass(frozen=True)
class Trained:
    """What the job stored: the model and history manifests, and the FitResult rebuilt from them."""

    model: Manifest
    history: Manifest
    fit: FitResult


def _one_line(text: Any) -> str:
    return " ".join(str(text or "").split())


class RayJobClient:
    """One RayJob by name: create, read its status, copy new submitter log lines to ``on_line``, delete."""

    def __init__(self, custom: Any, core: Any, namespace: str, name: str, on_line: LineSink) -> None:
        self.custom, self.core, self.namespace, self.name, self.on_line = custom, core, namespace, name, on_line
        self._lines_seen: dict[str, int] = {}

    def _error(self, exc: Any, verb: str, resource: str = RESOURCE) -> KubeError:
        return api_error(exc, verb=verb, resource=resource, namespace=self.namespace, name=self.name)

    def create(self, body: dict[str, Any]) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body)
        except ApiException as exc:
            if exc.status == 409:
                raise KubeRayError(f"RayJob {self.namespace}/{self.name} already exists (an earlier try of this run?);"
                                   f" delete it first: kubectl -n {self.namespace} delete rayjob {self.name}") from None
            raise self._error(exc, "create") from None

    def status(self) -> dict[str, Any]:
        """``status`` of the RayJob ({} before KubeRay first reconciles it)."""
        from kubernetes.client.exceptions import ApiException

        try:
            obj = self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, self.name)
        except ApiException as exc:
            if exc.status == 404:
                raise KubeRayError(f"RayJob {self.namespace}/{self.name} disappeared while the step watched it "
                                   "(deleted by someone else?)") from None
            raise self._error(exc, "get") from None
        return dict(obj.get("status") or {})

    def pump_logs(self) -> None:
        """Pass the submitter pods' log lines not yet seen to ``on_line`` (a pod still starting has none)."""
        from kubernetes.client.exceptions import ApiException

        try:
            pods = self.core.list_namespaced_pod(self.namespace, label_selector=f"job-name={self.name}").items
        except ApiException as exc:
            raise self._error(exc, "list", "pods") from None
        for pod in sorted(pods, key=lambda p: p.metadata.name):
            pod_name = pod.metadata.name
            try:  # raw bytes: the client would json-decode a log that happens to parse as JSON
                raw = self.core.read_namespaced_pod_log(pod_name, self.namespace, container=SUBMITTER_CONTAINER,
                                                        _preload_content=False)
            except ApiException as exc:
                if exc.status == 400:  # "container ... is waiting to start": no log yet
                    continue
                raise api_error(exc, verb="get", resource="pods/log", namespace=self.namespace,
                                name=pod_name) from None
            lines = raw.data.decode("utf-8", "replace").splitlines()
            for line in lines[self._lines_seen.get(pod_name, 0):]:
                self.on_line(line)
            self._lines_seen[pod_name] = len(lines)

    def delete(self) -> None:
        """Delete the RayJob; KubeRay's owner references take its RayCluster and submitter Job with it."""
        from kubernetes.client.exceptions import ApiException

        try:
            self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, self.name,
                                                        propagation_policy="Background")
        except ApiException as exc:
            if exc.status != 404:
                raise self._error(exc, "delete") from None
            logger.info("RayJob %s/%s was already gone", self.namespace, self.name)


def failure(status: dict[str, Any]) -> str | None:
    """Why a finished RayJob failed, or None while it runs or once it succeeded.

    KubeRay marks the end in ``jobDeploymentStatus`` (Complete or Failed); a Complete job succeeded only when the
    Ray job's own ``jobStatus`` is SUCCEEDED (older KubeRay reports a failed Ray job as Complete + FAILED).
    """
    deployment, job = status.get("jobDeploymentStatus") or "", status.get("jobStatus") or ""
    if deployment == "Failed":
        return f"{status.get('reason') or job or 'Failed'}: {_one_line(status.get('message')) or 'no message'}"
    if deployment == "Complete" and job != "SUCCEEDED":
        return f"job {job or 'status unknown'}: {_one_line(status.get('message')) or 'no message'}"
    return None


def finished(status: dict[str, Any]) -> bool:
    return (status.get("jobDeploymentStatus") or "") in ("Complete", "Failed")


def _describe(status: dict[str, Any]) -> str:
    msg = _one_line(status.get("message"))
    return (f"{status.get('jobDeploymentStatus') or 'New'} / job {status.get('jobStatus') or '-'}"
            + (f" ({msg})" if msg else ""))


def _read_status(job: RayJobClient, errors: int) -> tuple[dict[str, Any] | None, int]:
    """One status read; a transient failure (5xx, connection) is retried on the next poll, a few times."""
    from urllib3.exceptions import HTTPError

    try:
        return job.status(), 0
    except (TransientKubeError, HTTPError) as exc:
        if errors + 1 >= MAX_READ_ERRORS:
            raise KubeRayError(f"RayJob {job.namespace}/{job.name}: {MAX_READ_ERRORS} status reads failed in a "
                               f"row; last: {_one_line(exc)}") from None
        logger.warning("RayJob %s/%s: status read failed (%s); retrying", job.namespace, job.name, _one_line(exc))
        return None, errors + 1


def watch(job: RayJobClient, *, timeout_s: float, poll_s: float, clock: Callable[[], float] = time.monotonic,
          sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Poll until the RayJob finishes; return its final status when it succeeded.

    Raises:
        KubeRayError: the job failed (reason and message), or ``timeout_s`` passed (its last state).
    """
    deadline, last, shown, errors = clock() + timeout_s, {}, "", 0
    while True:
        status, errors = _read_status(job, errors)
        last = status if status is not None else last
        job.pump_logs()
        if _describe(last) != shown:
            shown = _describe(last)
            logger.info("RayJob %s/%s: %s", job.namespace, job.name, shown)
        if finished(last):
            job.pump_logs()  # the driver's last lines may land after the status flipped
            why = failure(last)
            if why is not None:
                raise KubeRayError(f"RayJob {job.namespace}/{job.name} failed: {why}")
            return last
        remaining = deadline - clock()
        if remaining <= 0:
            raise KubeRayError(f"RayJob {job.namespace}/{job.name} did not finish within {timeout_s:g} s "
                               f"(train.kuberay.timeout_s); last state: {_describe(last)}")
        sleep(min(poll_s, remaining))


def run_rayjob(job: RayJobClient, body: dict[str, Any], *, timeout_s: float, poll_s: float, keep_on_failure: bool,
               clock: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Create the RayJob, watch it, and delete it afterwards (a failed one is kept when ``keep_on_failure``)."""
    job.create(body)
    logger.info("created RayJob %s/%s", job.namespace, job.name)
    ok = False
    try:
        status = watch(job, timeout_s=timeout_s, poll_s=poll_s, clock=clock, sleep=sleep)
        ok = True
        return status
    except BaseException as exc:
        if keep_on_failure:
            logger.warning("keeping failed RayJob %s/%s for debugging (train.kuberay.keep_job_on_failure): "
                           "kubectl -n %s describe rayjob %s", job.namespace, job.name, job.namespace, job.name)
            if isinstance(exc, KubeRayError):
                raise KubeRayError(f"{exc} (kept: kubectl -n {job.namespace} get rayjob {job.name})") from None
        raise
    finally:
        if ok or not keep_on_failure:
            job.delete()
            logger.info("deleted RayJob %s/%s", job.namespace, job.name)


def line_sink(name: str, on_epoch_end: EpochCallback | None, out: Any = None) -> LineSink:
    """Submitter log lines go to the step log (stderr), prefixed; the driver's epoch lines become callbacks."""

    def sink(line: str) -> None:
        stream = out if out is not None else sys.stderr
        stream.write(f"[{name}] {line}\n")
        stream.flush()
        at = line.find(EPOCH_MARKER)
        if at >= 0 and on_epoch_end is not None:
            try:
                event = json.loads(line[at + len(EPOCH_MARKER):])
                epoch, row = int(event["epoch"]), dict(event["row"])
            except (ValueError, KeyError, TypeError):
                logger.warning("unreadable epoch line from the RayJob: %s", line[:200])
                return
            on_epoch_end(epoch, row)

    return sink


def read_trained(cfg: ExperimentConfig, store: ArtifactStore, *, dataset_key: str, prefix: str) -> Trained:
    """The model, history and training state the job stored under ``<prefix>/train/``, checked against the run.

    Raises:
        KubeRayError: no model there, or one trained on another dataset, or its history/checkpoint missing.
    """
    import torch

    from medopt.store import ArtifactNotFound
    from medopt.train.history import load_history

    model_key = f"{prefix}/train/model.pt"
    try:
        model = store.manifest(model_key)
        if dataset_key not in model.parents:
            raise KubeRayError(f"{model_key} was trained on {list(model.parents)}, not on {dataset_key}")
        history = store.manifest(str((model.meta or {})["history"]))
        checkpoint_key = next(p for p in model.parents if p.endswith("/train/checkpoint.pt"))
        with tempfile.TemporaryDirectory() as tmp:
            history_dict = load_history(store.get_file(history.key, Path(tmp) / "history.json"))
            state = torch.load(store.get_file(checkpoint_key, Path(tmp) / "checkpoint.pt"), map_location="cpu",
                               weights_only=True)
    except (ArtifactNotFound, KeyError, StopIteration, HistoryError) as exc:
        raise KubeRayError(f"the RayJob succeeded but {prefix}/train/ in {store.uri} lacks its model, history or "
                           f"checkpoint ({_one_line(exc) or type(exc).__name__})") from None
    summary = model.metrics or {}
    fit = FitResult(best_epoch=int(summary["best_epoch"]), best_score=float(summary["best_score"]),
                    epochs_run=int(summary["epochs_run"]), stopped_early=bool(summary["stopped_early"]),
                    history=history_dict, monitor=cfg.train.monitor, _state=state)
    return Trained(model=model, history=history, fit=fit)


def train_on_kuberay(cfg: ExperimentConfig, store: ArtifactStore, *, dataset_key: str, prefix: str,
                     on_epoch_end: EpochCallback | None = None) -> Trained:
    """Train on a RayJob of its own and return what it stored (the step's outputs, as local training gives).

    Raises:
        KubeRayJobError: the store is not S3.
        KubeConfigError: no in-cluster ServiceAccount and no kubeconfig.
        KubeError: the API refused a request (403 names the RBAC verb).
        KubeRayError: the job failed or timed out, or stored no model.
    """
    check_store(cfg)
    from kubernetes import client

    body = build_rayjob(cfg, dataset_key=dataset_key, prefix=prefix)
    api = api_client()
    name, k = body["metadata"]["name"], cfg.train.kuberay
    job = RayJobClient(client.CustomObjectsApi(api), client.CoreV1Api(api), k.namespace, name,
                       line_sink(name, on_epoch_end))
    run_rayjob(job, body, timeout_s=k.timeout_s, poll_s=k.poll_s, keep_on_failure=k.keep_job_on_failure)
    return read_trained(cfg, store, dataset_key=dataset_key, prefix=prefix)
