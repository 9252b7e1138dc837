"""Kubernetes NetworkPolicy semantics over the captured policies: may this endpoint open a connection to
that one? A connection needs the source's egress and the destination's ingress to allow it; a direction
is open for a pod no policy of that type selects, and otherwise needs one rule of a selecting policy
whose peers (none: any) and ports (none: any) match. Enough of the API for matchLabels selectors,
ipBlocks (with except) and numeric ports, which is all the stack's policies use; anything else fails
loudly rather than being read as "allowed".
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.infra.harness import Captured

NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
SUPPORTED_PEER_KEYS = {"podSelector", "namespaceSelector", "ipBlock"}


@dataclass(frozen=True)
class Endpoint:
    """A pod (namespace and labels) or an address outside the cluster (namespace None)."""

    ip: str
    namespace: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


def _selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    selector = selector or {}
    assert set(selector) <= {"matchLabels"}, f"unsupported selector {selector}"
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def _peer_matches(peer: Mapping[str, Any], policy_namespace: str, other: Endpoint) -> bool:
    assert set(peer) <= SUPPORTED_PEER_KEYS and peer, f"unsupported peer {peer}"
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        address = ipaddress.ip_address(other.ip)
        excluded = any(address in ipaddress.ip_network(e) for e in block.get("except") or [])
        return address in ipaddress.ip_network(block["cidr"]) and not excluded
    if other.namespace is None:
        return False
    if "namespaceSelector" in peer:
        namespace_labels = {"kubernetes.io/metadata.name": other.namespace}
        if not _selects(peer["namespaceSelector"], namespace_labels):
            return False
    elif other.namespace != policy_namespace:
        return False
    return _selects(peer.get("podSelector"), other.labels)


def _port_matches(rule_ports: list[Mapping[str, Any]] | None, port: int, protocol: str) -> bool:
    if not rule_ports:
        return True
    for p in rule_ports:
        assert "endPort" not in p and isinstance(p.get("port", 0), int | float), f"unsupported port {p}"
        if p.get("protocol", "TCP") == protocol and ("port" not in p or int(p["port"]) == port):
            return True
    return False


def _direction_allows(
    policies: list[Mapping[str, Any]],
    pod: Endpoint,
    other: Endpoint,
    port: int,
    protocol: str,
    *,
    egress: bool,
) -> bool:
    kind, rules_key, peers_key = ("Egress", "egress", "to") if egress else ("Ingress", "ingress", "from")
    selecting = [
        p
        for p in policies
        if p["metadata"]["namespace"] == pod.namespace
        and _selects(p["spec"].get("podSelector"), pod.labels)
        and kind in p["spec"].get("policyTypes", [])
    ]
    if not selecting:
        return True
    return any(
        (
            not rule.get(peers_key)
            or any(_peer_matches(peer, p["metadata"]["namespace"], other) for peer in rule[peers_key])
        )
        and _port_matches(rule.get("ports"), port, protocol)
        for p in selecting
        for rule in p["spec"].get(rules_key) or []
    )


def network_policies(captured: Captured) -> list[Mapping[str, Any]]:
    return [captured.inputs(NETWORK_POLICY, r.name) for r in captured.of_type(NETWORK_POLICY)]


def allowed(
    policies: list[Mapping[str, Any]], source: Endpoint, dest: Endpoint, port: int, protocol: str = "TCP"
) -> bool:
    """Whether ``source`` may connect to ``dest`` on ``port`` under ``policies``."""
    out = source.namespace is None or _direction_allows(policies, source, dest, port, protocol, egress=True)
    into = dest.namespace is None or _direction_allows(policies, dest, source, port, protocol, egress=False)
    return out and into
