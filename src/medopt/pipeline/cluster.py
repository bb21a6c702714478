"""Compile the pipeline for a Kubeflow Pipelines cluster and submit it to one's API server.

The config given at compile time decides the cluster settings (``kfp`` section) and the default of the
``config_yaml`` parameter (its explicitly set fields). A user passing another config with the `kfp` CLI must pass
block-style YAML (``config_yaml="$(cat x.yaml)"``): the CLI JSON-decodes each ``key=value``, and block YAML is never
JSON, so it stays a string.
"""

from __future__ import annotations

import json
import shlex
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from medopt.config import ExperimentConfig
from medopt.errors import MedoptError

PROBE_TIMEOUT_S = 5.0
HEALTHZ = "apis/v2beta1/healthz"


class SubmitError(MedoptError, RuntimeError):
    """The KFP API server could not be reached, or it refused the run; the message is one line."""


def config_text(cfg: ExperimentConfig | None) -> str:
    """The fields the config sets explicitly (file and ``--set``) as one line of JSON (hence YAML); "" for defaults.

    One line because the KFP compiler copies parameter defaults into the YAML's header comment, and a multi-line
    default ends the comment early: the compiled file would not load.
    """
    if cfg is None:
        return ""
    explicit = cfg.model_dump(mode="json", exclude_unset=True)
    return json.dumps(explicit, separators=(",", ":")) if explicit else ""


def compile_for_cluster(output: Path, cfg: ExperimentConfig | None = None) -> Path:
    """Write the pipeline YAML with ``cfg.kfp``'s settings on every task and ``cfg`` as the default config."""
    from kfp import compiler

    from pipelines.medopt_pipeline import build_pipeline

    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_suffix(".tmp.yaml")
    compiler.Compiler().compile(build_pipeline(cfg, cluster=True, config_yaml=config_text(cfg)), str(tmp))
    tmp.replace(output)
    return output


@dataclass(frozen=True)
class Submission:
    """One run to create: where, which package, under which experiment, run name and service account."""

    host: str
    package: Path
    experiment: str
    run_name: str
    service_account: str
    namespace: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)


def kfp_command(sub: Submission, config_file: Path | None = None) -> str:
    """The `kfp run create` line that creates the same run (the CLI has no service-account option: KFP's default
    service account runs it)."""
    words = ["kfp", "--endpoint", sub.host, "run", "create", "--experiment-name", sub.experiment,
             "--run-name", sub.run_name, "--package-file", str(sub.package)]
    line = " ".join(shlex.quote(w) for w in words)
    if config_file is not None:
        line += f' config_yaml="$(cat {shlex.quote(str(config_file))})"'
    return line


def probe(host: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Fail in seconds, with one line, unless the KFP API answers its health check (the client would retry 5 times,
    logging a traceback each time)."""
    parts = urlsplit(host)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SubmitError(f"--host {host!r} is not an http(s) URL like http://localhost:8080")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        raise SubmitError(f"--host {host!r} has an invalid port") from None
    url = f"{host.rstrip('/')}/{HEALTHZ}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - the scheme is checked above
            response.read()
    except urllib.error.HTTPError as exc:
        raise SubmitError(f"KFP API at {host} answered {exc.code} to {HEALTHZ}: {_api_reason(exc)}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        text = getattr(reason, "strerror", None) or str(reason) or type(exc).__name__
        raise SubmitError(f"KFP API at {host} does not answer ({text}); is `kubectl port-forward` running?") from None


def _api_reason(exc: Exception) -> str:
    """The message of an API error: the JSON body's ``message`` (KFP's API server), else the exception's first line."""
    body = getattr(exc, "body", None)
    if body is None and hasattr(exc, "read"):
        try:
            body = exc.read()
        except OSError:
            body = None
    if body:
        try:
            parsed = json.loads(body)
            return str(parsed.get("message") or parsed.get("error") or body)
        except (ValueError, AttributeError):
            return str(body)[:200]
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def submit(sub: Submission) -> str:
    """Create the run on the KFP API server; return its run id."""
    probe(sub.host)
    import kfp
    from kfp_server_api.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:  # ApiException: the server refused; HTTPError: the connection broke; ValueError: the SDK's own checks
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "This client only works with KFP v2.0.0-beta.2 and later"
            client = kfp.Client(host=sub.host)
            result = client.create_run_from_pipeline_package(
                str(sub.package), arguments=sub.arguments, run_name=sub.run_name, experiment_name=sub.experiment,
                namespace=sub.namespace, service_account=sub.service_account,
            )
    except (ApiException, HTTPError, ValueError) as exc:
        raise SubmitError(f"KFP API at {sub.host} refused the run: {_api_reason(exc)}") from None
    return str(result.run_id)
