"""A NetworkPolicy evaluator: is a connection from one pod (or to an IP) on a port allowed by the policies?

The semantics of networking.k8s.io/v1: a pod is isolated for a direction when some policy in its namespace selects it
with that direction in ``policyTypes``; then only what a rule of a selecting policy allows passes, and a connection
needs both the source's egress and the destination's ingress. Peers: ``podSelector`` alone means pods of the
policy's namespace, ``namespaceSelector`` alone all pods of the matching namespaces, both together the matching pods
of the matching namespaces, ``ipBlock`` an address range (with ``except``). Ports match by number or container-port
name, with ``endPort`` ranges; no ``ports`` means every port, no ``from``/``to`` every peer.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Pod:
    namespace: str
    labels: dict[str, str]
    name: str = "pod"
    ports: dict[str, int] = field(default_factory=dict)  # container port names

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Address:
    ip: str

    def __str__(self) -> str:
        return self.ip


Peer = Pod | Address


def _expr(e: dict[str, Any], labels: dict[str, str]) -> bool:
    op, k, values = e["operator"], e["key"], e.get("values", [])
    if op == "In":
        return labels.get(k) in values
    if op == "NotIn":
        return labels.get(k) not in values
    if op == "Exists":
        return k in labels
    if op == "DoesNotExist":
        return k not in labels
    raise ValueError(f"unknown selector operator {op}")


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A LabelSelector; ``{}`` selects everything."""
    return (all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())
            and all(_expr(e, labels) for e in selector.get("matchExpressions") or []))


def _ns_labels(ns: str) -> dict[str, str]:
    return {"kubernetes.io/metadata.name": ns}


def _peer_matches(peer: dict[str, Any], policy_ns: str, other: Peer) -> bool:
    if "ipBlock" in peer:
        if not isinstance(other, Address):
            return False
        ip = ipaddress.ip_address(other.ip)
        block = peer["ipBlock"]
        return ip in ipaddress.ip_network(block["cidr"]) and not any(
            ip in ipaddress.ip_network(x) for x in block.get("except", []))
    if not isinstance(other, Pod):
        return False
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], _ns_labels(other.namespace)):
            return False
    elif other.namespace != policy_ns:
        return False
    return selects(peer.get("podSelector") or {}, other.labels)


def _port_matches(rule_ports: list[dict[str, Any]] | None, dst: Peer, port: int, protocol: str) -> bool:
    if not rule_ports:
        return True
    for p in rule_ports:
        if p.get("protocol", "TCP") != protocol:
            continue
        want = p.get("port")
        if want is None:
            return True
        if isinstance(want, str):
            want = dst.ports.get(want) if isinstance(dst, Pod) else None
            if want is None:
                continue
        if want <= port <= p.get("endPort", want):
            return True
    return False


def _types(spec: dict[str, Any]) -> list[str]:
    return spec.get("policyTypes") or (["Ingress", "Egress"] if "egress" in spec else ["Ingress"])


def _direction_allows(policies: list[dict[str, Any]], pod: Pod, other: Peer, dst: Peer, port: int, protocol: str,
                      direction: str) -> bool:
    selecting = [p for p in policies if p["metadata"].get("namespace") == pod.namespace
                 and selects(p["spec"].get("podSelector") or {}, pod.labels) and direction in _types(p["spec"])]
    if not selecting:
        return True  # not isolated in this direction
    rules_key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    for policy in selecting:
        ns = policy["metadata"]["namespace"]
        for rule in policy["spec"].get(rules_key) or []:
            peers = rule.get(peers_key)
            if (not peers or any(_peer_matches(peer, ns, other) for peer in peers)) and \
                    _port_matches(rule.get("ports"), dst, port, protocol):
                return True
    return False


def allowed(policies: list[dict[str, Any]], src: Peer, dst: Peer, port: int, protocol: str = "TCP") -> bool:
    """Whether ``src`` may open a connection to ``dst:port`` under ``policies`` (NetworkPolicy objects)."""
    egress = not isinstance(src, Pod) or _direction_allows(policies, src, dst, dst, port, protocol, "Egress")
    ingress = not isinstance(dst, Pod) or _direction_allows(policies, dst, src, dst, port, protocol, "Ingress")
    return egress and ingress
