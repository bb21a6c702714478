"""Strict offline validation of Kubernetes manifests, as ``kubectl apply --validate=strict`` would report.

Custom kinds (KServe, KubeRay) are checked against the CRDs' ``openAPIV3Schema`` in ``../shared/crds`` (read by path),
with ``additionalProperties: false`` added to every object schema that lists properties, unless it carries
``x-kubernetes-preserve-unknown-fields``; ``x-kubernetes-int-or-string`` accepts integers and strings. Metadata is
checked against the strict ObjectMeta schema; core kinds use ``kubernetes-validate``'s strict schemas.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

REPO = Path(__file__).resolve().parents[2]
CRDS = REPO.parent / "shared" / "crds"
K8S_VERSION = "1.32"
CRD_FILES = {
    ("serving.kserve.io", "InferenceService"): "serving.kserve.io_inferenceservices.yaml",
    ("serving.kserve.io", "ServingRuntime"): "serving.kserve.io_servingruntimes.yaml",
    ("serving.kserve.io", "ClusterServingRuntime"): "serving.kserve.io_clusterservingruntimes.yaml",
    ("ray.io", "RayJob"): "ray.io_rayjobs.yaml",
    ("ray.io", "RayCluster"): "ray.io_rayclusters.yaml",
}


class ManifestInvalid(ValueError):
    """A manifest fails strict schema validation; the message names the kind, object and JSON path."""


def _strict(node: Any) -> Any:
    """Copy of a structural schema with unknown fields forbidden where the API server would prune/reject them."""
    if isinstance(node, list):
        return [_strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _strict(v) for k, v in node.items()}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    preserve = out.pop("x-kubernetes-preserve-unknown-fields", False)
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


@functools.cache
def _object_meta_schema() -> dict[str, Any]:
    root = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    folder = sorted(root.glob(f"v{K8S_VERSION}.*-local-strict"))[-1]
    defs = json.loads((folder / "_definitions.json").read_text())["$defs"]
    meta = copy.deepcopy(defs["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"])
    meta["properties"] = {k: ({} if "$ref" in v else v) for k, v in meta["properties"].items()}  # refs: not used here
    meta["additionalProperties"] = False
    return meta


@functools.cache
def crd_schema(group: str, kind: str, version: str) -> dict[str, Any]:
    """The strict schema of ``group/version`` ``kind`` from the shared CRD file."""
    try:
        path = CRDS / CRD_FILES[(group, kind)]
    except KeyError:
        raise ManifestInvalid(f"no CRD known for {group} {kind}") from None
    crd = yaml.safe_load(path.read_text())
    for v in crd["spec"]["versions"]:
        if v["name"] == version:
            schema = _strict(v["schema"]["openAPIV3Schema"])
            schema["properties"]["metadata"] = _object_meta_schema()
            schema["required"] = sorted({*schema.get("required", ()), "apiVersion", "kind", "metadata"})
            return schema
    raise ManifestInvalid(f"{path.name} has no version {version}")


def validate_manifest(doc: dict[str, Any]) -> None:
    """Validate one manifest strictly; raises ManifestInvalid with kind, name and path of the first error."""
    api, kind = doc.get("apiVersion", ""), doc.get("kind", "")
    name = (doc.get("metadata") or {}).get("name", "?")
    group, _, version = api.rpartition("/")
    try:
        if (group, kind) in CRD_FILES:
            jsonschema.Draft7Validator(crd_schema(group, kind, version)).validate(doc)
        else:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as exc:
        err = getattr(exc, "caused_by", exc)
        where = "/".join(str(p) for p in getattr(err, "absolute_path", ())) or "(root)"
        raise ManifestInvalid(f"{kind} {name}: {where}: {getattr(err, 'message', exc)}") from None


def load_docs(text: str) -> list[dict[str, Any]]:
    """Non-empty documents of a multi-document YAML string."""
    return [d for d in yaml.safe_load_all(text) if d]
