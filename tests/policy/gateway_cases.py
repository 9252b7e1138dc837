"""The edge's Gateway API objects in the compliant plan, and one insecure change per edge policy.

Kept apart from cases.py (which includes both): the objects are shaped as components/edge.py and
components/workloads/ingress.py declare them.
"""

from __future__ import annotations

from typing import Any

PROJECT = "ai-agents-platform"
STACK = "production"
GATEWAY_API = "gateway.networking.k8s.io/v1"
EDGE_NS = "envoy-gateway-system"
GATEWAY = f"kubernetes:{GATEWAY_API}:Gateway"
HTTP_ROUTE = f"kubernetes:{GATEWAY_API}:HTTPRoute"
REFERENCE_GRANT = "kubernetes:gateway.networking.k8s.io/v1beta1:ReferenceGrant"
CLIENT_TRAFFIC_POLICY = "kubernetes:gateway.envoyproxy.io/v1alpha1:ClientTrafficPolicy"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
API_ROUTE = (HTTP_ROUTE, "api")


def entry(name: str, type_: str, kind: str, api: str, spec: dict[str, Any], namespace: str) -> dict[str, Any]:
    return {
        "urn": f"urn:pulumi:{STACK}::{PROJECT}::{type_}::{name}",
        "type": type_,
        "name": name,
        "parent": None,
        "provider": None,
        "dependsOn": [],
        "protect": False,
        "props": {
            "apiVersion": api,
            "kind": kind,
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        },
    }


def gateway_resources() -> list[dict[str, Any]]:
    host = "api.example.com"
    return [
        entry(
            "edge",
            GATEWAY,
            "Gateway",
            GATEWAY_API,
            {
                "gatewayClassName": "envoy-gateway",
                "listeners": [
                    {
                        "name": "https",
                        "protocol": "HTTPS",
                        "port": 443.0,
                        "hostname": host,
                        "tls": {
                            "mode": "Terminate",
                            "certificateRefs": [{"kind": "Secret", "name": "api-tls"}],
                        },
                    },
                    {"name": "http", "protocol": "HTTP", "port": 80.0, "hostname": host},
                ],
            },
            EDGE_NS,
        ),
        entry(
            "https-redirect",
            HTTP_ROUTE,
            "HTTPRoute",
            GATEWAY_API,
            {
                "parentRefs": [{"name": "edge", "sectionName": "http"}],
                "hostnames": [host],
                "rules": [
                    {
                        "filters": [
                            {
                                "type": "RequestRedirect",
                                "requestRedirect": {"scheme": "https", "statusCode": 301.0},
                            }
                        ]
                    }
                ],
            },
            EDGE_NS,
        ),
        entry(
            "api",
            HTTP_ROUTE,
            "HTTPRoute",
            GATEWAY_API,
            {
                "parentRefs": [{"name": "edge", "namespace": EDGE_NS, "sectionName": "https"}],
                "hostnames": [host],
                "rules": [
                    {
                        "matches": [
                            {"path": {"type": "PathPrefix", "value": "/webhook"}},
                            {"path": {"type": "PathPrefix", "value": "/api"}},
                            {"path": {"type": "Exact", "value": "/openapi.json"}},
                        ],
                        "backendRefs": [{"name": "api", "port": 8000.0}],
                    }
                ],
            },
            "ai-agents",
        ),
        entry(
            "edge-client",
            CLIENT_TRAFFIC_POLICY,
            "ClientTrafficPolicy",
            "gateway.envoyproxy.io/v1alpha1",
            {
                "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "edge"}],
                "tls": {"minVersion": "1.2", "maxVersion": "1.3"},
            },
            EDGE_NS,
        ),
        entry(
            "edge-default-deny",
            NETWORK_POLICY,
            "NetworkPolicy",
            "networking.k8s.io/v1",
            {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
            EDGE_NS,
        ),
    ]


# Case fields (tests/policy/cases.py Case): policy, target, change, detail, and optionally also.
GATEWAY_CASES: list[dict[str, Any]] = [
    {
        "policy": "gateway-http-listener-redirect-only",
        "target": API_ROUTE,
        # Without sectionName the route attaches to every listener, the plain-HTTP one included.
        "change": {"spec.parentRefs.0.sectionName": None},
        "detail": "HTTPRoute ai-agents/api serves plain-HTTP listener http of Gateway envoy-gateway-system/edge "
        "with more than an https redirect.",
    },
    {
        "policy": "gateway-route-no-internal-paths",
        "target": API_ROUTE,
        "change": {"spec.rules.0.matches.1": {"path": {"type": "PathPrefix", "value": "/"}}},
        "detail": "HTTPRoute ai-agents/api routes /metrics to a backend (PathPrefix /).",
    },
    {
        "policy": "gateway-tls-minimum-1-2",
        "target": (CLIENT_TRAFFIC_POLICY, "edge-client"),
        "change": {"spec.tls.minVersion": "1.1"},
        "detail": "ClientTrafficPolicy envoy-gateway-system/edge-client sets tls.minVersion 1.1: below TLS 1.2.",
    },
    {
        "policy": "k8s-load-balancer-only-gateway",
        "target": ("kubernetes:helm.sh/v3:Release", "ingress-nginx"),
        "change": {"values": {"controller": {"service": {"type": "LoadBalancer"}}}},
        "detail": "Helm release ingress-nginx creates a Service of type LoadBalancer: only the gateway's proxies get one.",
    },
    {
        "policy": "gateway-cross-namespace-backend-granted",
        "target": API_ROUTE,
        "change": {"spec.rules.0.backendRefs.0.namespace": "monitoring"},
        "detail": "HTTPRoute ai-agents/api routes to monitoring/api without a ReferenceGrant in monitoring.",
    },
    {
        "policy": "gateway-namespace-default-deny",
        "target": (NETWORK_POLICY, "edge-default-deny"),
        # Ingress only: the proxies and the controller may open connections anywhere.
        "change": {"spec.policyTypes": ["Ingress"]},
        "detail": "Gateway envoy-gateway-system/edge: namespace envoy-gateway-system has no default-deny "
        "NetworkPolicy (every pod, ingress and egress, no rules).",
        "reported": (GATEWAY, "edge"),
    },
]
