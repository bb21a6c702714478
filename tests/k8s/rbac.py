"""Which RBAC permissions a list of Kubernetes API requests needs, and whether medopt's pipeline Role grants them.

Used by the tests that drive medopt's cluster code through the loopback API server (tests/kube_api_server.py): the
requests the real client sent are mapped to (apiGroup, resource, verb) as the API server's authorizer does, so the
Role in k8s/base/rbac.yaml is shown to allow exactly what the code does, no less.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable

import yaml

REPO = Path(__file__).resolve().parents[2]
_PATH = re.compile(r"^/(?:api/v1|apis/(?P<group>[^/]+)/[^/]+)/namespaces/[^/]+/(?P<resource>[^/]+)"
                   r"(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?$")
_VERBS = {"POST": "create", "PATCH": "patch", "PUT": "update"}

Permission = tuple[str, str, str]


def permission(method: str, path: str, query: dict[str, list[str]] | None = None) -> Permission:
    """(apiGroup, resource[/subresource], verb) of one namespaced request."""
    m = _PATH.match(path)
    if m is None:
        raise ValueError(f"not a namespaced API path: {path}")
    resource = m["resource"] + (f"/{m['sub']}" if m["sub"] else "")
    if method == "GET":
        verb = "get" if m["name"] else ("watch" if (query or {}).get("watch") == ["true"] else "list")
    elif method == "DELETE":
        verb = "delete" if m["name"] else "deletecollection"
    else:
        verb = _VERBS[method]
    return m["group"] or "", resource, verb


def pipeline_role_rules() -> list[dict[str, Any]]:
    """The rules of the pipeline's Role as k8s/base/rbac.yaml declares them."""
    (role,) = [d for d in yaml.safe_load_all((REPO / "k8s" / "base" / "rbac.yaml").read_text())
               if d and d["kind"] == "Role"]
    return role["rules"]


def missing_permissions(requests: Iterable[Any], rules: list[dict[str, Any]] | None = None) -> set[Permission]:
    """Permissions the requests (objects with method, path, query) need that the rules do not grant."""
    rules = pipeline_role_rules() if rules is None else rules
    needed = {permission(r.method, r.path, r.query) for r in requests}
    return {p for p in needed if not any(p[0] in rule["apiGroups"] and p[1] in rule["resources"]
                                         and p[2] in rule["verbs"] for rule in rules)}
