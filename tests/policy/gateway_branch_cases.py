"""The edge policies' further branches (policy/gateway.py), in the shapes of tests/policy/branch_cases.py.

Each ``BranchCase`` is one more change to the compliant plan that the policy must report exactly; each
``Allowed`` is the other side of a branch, a change the policy must not report. The Gateway API rules
they rely on (defaults of parentRefs and backendRefs, PathPrefix matching element by element, what a
ReferenceGrant admits) are the specification's, not the code's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.policy.branch_cases import Allowed, BranchCase
from tests.policy.cases import DELETE, Plan, find
from tests.policy.gateway_cases import (
    API_ROUTE,
    EDGE_NS,
    GATEWAY,
    NETWORK_POLICY,
    REFERENCE_GRANT,
    entry,
)

EDGE = (GATEWAY, "edge")
DENY = (NETWORK_POLICY, "edge-default-deny")
HELM = ("kubernetes:helm.sh/v3:Release", "ingress-nginx")
MULTICLUSTER = "multicluster.x-k8s.io"

REDIRECT = "gateway-http-listener-redirect-only"
INTERNAL = "gateway-route-no-internal-paths"
TLS = "gateway-tls-minimum-1-2"
LOAD_BALANCER = "k8s-load-balancer-only-gateway"
GRANTED = "gateway-cross-namespace-backend-granted"
DEFAULT_DENY = "gateway-namespace-default-deny"

METRICS = "HTTPRoute ai-agents/api routes /metrics to a backend"
UNGRANTED = "HTTPRoute ai-agents/api routes to shared/api without a ReferenceGrant in shared."
OPEN = "no default-deny NetworkPolicy (every pod, ingress and egress, no rules)."


def _grant(
    name: str,
    *,
    namespace: str = "shared",
    to: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ReferenceGrant in ``namespace`` from HTTPRoutes of ai-agents to ``to`` (default: Service api)."""
    return entry(
        name,
        REFERENCE_GRANT,
        "ReferenceGrant",
        "gateway.networking.k8s.io/v1beta1",
        {
            "from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "ai-agents"}],
            "to": [to if to is not None else {"group": "", "kind": "Service", "name": "api"}],
        },
        namespace,
    )


def _backend_in_shared(
    *grants: dict[str, Any], backend: dict[str, Any] | None = None
) -> Callable[[Plan], None]:
    """The API route's backend moved to namespace shared (``backend``: its other fields), ``grants`` added."""

    def change(plan: Plan) -> None:
        ref = backend if backend is not None else {"name": "api", "port": 8000.0}
        find(plan, *API_ROUTE)["props"]["spec"]["rules"][0]["backendRefs"] = [{**ref, "namespace": "shared"}]
        plan.extend(grants)

    return change


def _second_http_listener(plan: Plan) -> None:
    """Port 8080 plain HTTP too, and the API route on every listener."""
    find(plan, *EDGE)["props"]["spec"]["listeners"].append(
        {"name": "http-alt", "protocol": "HTTP", "port": 8080.0}
    )
    find(plan, *API_ROUTE)["props"]["spec"]["parentRefs"][0].pop("sectionName")


def _redirect_rule_first(plan: Plan) -> None:
    """A redirect-only rule ahead of a forwarding rule that matches everything."""
    rules = find(plan, *API_ROUTE)["props"]["spec"]["rules"]
    rules[0]["matches"] = [{"path": {"type": "PathPrefix", "value": "/"}}]
    redirect = {"filters": [{"type": "RequestRedirect", "requestRedirect": {"scheme": "https"}}]}
    rules.insert(0, redirect)


def _gateway_renamed(plan: Plan) -> None:
    """The Gateway's Kubernetes name differs from its logical name; the API route names it and every listener."""
    find(plan, *EDGE)["props"]["metadata"]["name"] = "edge-public"
    ref = find(plan, *API_ROUTE)["props"]["spec"]["parentRefs"][0]
    ref["name"] = "edge-public"
    ref.pop("sectionName")


def _wildcard_http_listener(plan: Plan) -> None:
    """The plain-HTTP listener takes every subdomain; the API route is on every listener."""
    find(plan, *EDGE)["props"]["spec"]["listeners"][1]["hostname"] = "*.example.com"
    find(plan, *API_ROUTE)["props"]["spec"]["parentRefs"][0].pop("sectionName")


GATEWAY_BRANCH_CASES: list[BranchCase] = [
    # gateway-http-listener-redirect-only
    BranchCase(
        REDIRECT,
        API_ROUTE,
        _second_http_listener,
        "HTTPRoute ai-agents/api serves plain-HTTP listener http, http-alt of Gateway envoy-gateway-system/edge "
        "with more than an https redirect.",
        branch="two-plain-listeners",
    ),
    BranchCase(
        REDIRECT,
        API_ROUTE,
        {"spec.parentRefs.0.sectionName": "http"},
        "HTTPRoute ai-agents/api serves plain-HTTP listener http of Gateway envoy-gateway-system/edge "
        "with more than an https redirect.",
        branch="section-is-the-http-listener",
    ),
    BranchCase(
        REDIRECT,
        API_ROUTE,
        # Kubernetes names, not Pulumi's logical names, are what parentRefs and messages use.
        {"metadata.name": "api-public", "spec.parentRefs.0.sectionName": DELETE},
        "HTTPRoute ai-agents/api-public serves plain-HTTP listener http of Gateway envoy-gateway-system/edge "
        "with more than an https redirect.",
        branch="kubernetes-name-of-the-route",
    ),
    BranchCase(
        REDIRECT,
        API_ROUTE,
        _gateway_renamed,
        "HTTPRoute ai-agents/api serves plain-HTTP listener http of Gateway envoy-gateway-system/edge-public "
        "with more than an https redirect.",
        branch="kubernetes-name-of-the-gateway",
    ),
    BranchCase(
        REDIRECT,
        API_ROUTE,
        # No namespace: the route is in "default"; its parentRef still names the Gateway's namespace.
        {"metadata.namespace": DELETE, "spec.parentRefs.0.sectionName": DELETE},
        "HTTPRoute default/api serves plain-HTTP listener http of Gateway envoy-gateway-system/edge "
        "with more than an https redirect.",
        branch="route-in-the-default-namespace",
    ),
    BranchCase(
        REDIRECT,
        API_ROUTE,
        # kind and group spelled out with the values they default to.
        {
            "spec.parentRefs.0": {
                "group": "gateway.networking.k8s.io",
                "kind": "Gateway",
                "name": "edge",
                "namespace": EDGE_NS,
            }
        },
        "HTTPRoute ai-agents/api serves plain-HTTP listener http of Gateway envoy-gateway-system/edge "
        "with more than an https redirect.",
        branch="explicit-gateway-kind-and-group",
    ),
    BranchCase(
        REDIRECT,
        API_ROUTE,
        # A port picks every listener on it: port 80 is the plain-HTTP one.
        {"spec.parentRefs.0.sectionName": DELETE, "spec.parentRefs.0.port": 80},
        "HTTPRoute ai-agents/api serves plain-HTTP listener http of Gateway envoy-gateway-system/edge "
        "with more than an https redirect.",
        branch="port-of-the-http-listener",
    ),
    BranchCase(
        REDIRECT,
        API_ROUTE,
        {"spec.parentRefs.0.sectionName": "http", "spec.parentRefs.0.port": 80.0},
        "HTTPRoute ai-agents/api serves plain-HTTP listener http of Gateway envoy-gateway-system/edge "
        "with more than an https redirect.",
        branch="section-and-port-of-the-http-listener",
    ),
    BranchCase(
        REDIRECT,
        API_ROUTE,
        {"spec.parentRefs.0.sectionName": DELETE, "spec.hostnames": ["*.example.com"]},
        "HTTPRoute ai-agents/api serves plain-HTTP listener http of Gateway envoy-gateway-system/edge "
        "with more than an https redirect.",
        branch="route-wildcard-covers-the-listener",
    ),
    BranchCase(
        REDIRECT,
        API_ROUTE,
        _wildcard_http_listener,
        "HTTPRoute ai-agents/api serves plain-HTTP listener http of Gateway envoy-gateway-system/edge "
        "with more than an https redirect.",
        branch="listener-wildcard-covers-the-route",
    ),
    BranchCase(
        REDIRECT,
        API_ROUTE,
        {"spec.parentRefs.0.sectionName": DELETE, "spec.hostnames": DELETE},
        "HTTPRoute ai-agents/api serves plain-HTTP listener http of Gateway envoy-gateway-system/edge "
        "with more than an https redirect.",
        branch="route-without-hostnames",
    ),
    # gateway-route-no-internal-paths
    BranchCase(
        INTERNAL,
        API_ROUTE,
        {"spec.rules.0.matches.1": {"path": {"type": "Exact", "value": "/metrics"}}},
        f"{METRICS} (Exact /metrics).",
        branch="exact-metrics",
    ),
    BranchCase(
        INTERNAL,
        API_ROUTE,
        # A trailing slash is ignored: PathPrefix /metrics/ matches /metrics itself.
        {"spec.rules.0.matches.1": {"path": {"type": "PathPrefix", "value": "/metrics/"}}},
        f"{METRICS} (PathPrefix /metrics/).",
        branch="prefix-with-trailing-slash",
    ),
    BranchCase(
        INTERNAL,
        API_ROUTE,
        {"spec.rules.0.matches": DELETE},
        f"{METRICS} (PathPrefix /).",
        branch="rule-without-matches",
    ),
    BranchCase(
        INTERNAL,
        API_ROUTE,
        # A header-only match: no path match is PathPrefix /.
        {"spec.rules.0.matches.1": {"headers": [{"name": "x-debug", "value": "1"}]}},
        f"{METRICS} (PathPrefix /).",
        branch="match-without-path",
    ),
    BranchCase(
        INTERNAL,
        API_ROUTE,
        {"spec.rules.0.matches.1": {"path": {"type": "RegularExpression", "value": "/(metrics"}}},
        f"{METRICS} (RegularExpression /(metrics).",
        branch="unreadable-regex",
    ),
    BranchCase(
        INTERNAL,
        API_ROUTE,
        _redirect_rule_first,
        f"{METRICS} (PathPrefix /).",
        branch="forwarding-rule-after-a-redirect",
    ),
    # gateway-tls-minimum-1-2
    BranchCase(
        TLS,
        ("kubernetes:gateway.envoyproxy.io/v1alpha1:ClientTrafficPolicy", "edge-client"),
        {"spec.tls.maxVersion": "1.0"},
        "ClientTrafficPolicy envoy-gateway-system/edge-client sets tls.maxVersion 1.0: below TLS 1.2.",
        branch="weak-maximum",
    ),
    # k8s-load-balancer-only-gateway
    BranchCase(
        LOAD_BALANCER,
        HELM,
        {"values": {"controller": {"extraServices": [{"name": "public", "type": "LoadBalancer"}]}}},
        "Helm release ingress-nginx creates a Service of type LoadBalancer: only the gateway's proxies get one.",
        branch="service-in-a-list",
    ),
    # gateway-cross-namespace-backend-granted
    BranchCase(
        GRANTED,
        API_ROUTE,
        _backend_in_shared(_grant("for-configmaps", to={"group": "", "kind": "ConfigMap", "name": "api"})),
        UNGRANTED,
        branch="grant-for-another-kind",
    ),
    BranchCase(
        GRANTED,
        API_ROUTE,
        _backend_in_shared(
            _grant("for-other-group", to={"group": MULTICLUSTER, "kind": "Service", "name": "api"})
        ),
        UNGRANTED,
        branch="grant-for-another-group",
    ),
    BranchCase(
        GRANTED,
        API_ROUTE,
        _backend_in_shared(_grant("for-worker", to={"group": "", "kind": "Service", "name": "worker"})),
        UNGRANTED,
        branch="grant-for-another-service",
    ),
    BranchCase(
        GRANTED,
        API_ROUTE,
        _backend_in_shared(_grant("in-ai-agents", namespace="ai-agents")),
        UNGRANTED,
        branch="grant-in-the-routes-namespace",
    ),
    # gateway-namespace-default-deny
    BranchCase(
        DEFAULT_DENY,
        DENY,
        {"spec.podSelector": {"matchExpressions": [{"key": "app", "operator": "Exists"}]}},
        f"Gateway envoy-gateway-system/edge: namespace envoy-gateway-system has {OPEN}",
        reported=EDGE,
        branch="selector-with-expressions",
    ),
    BranchCase(
        DEFAULT_DENY,
        EDGE,
        {"metadata.namespace": DELETE},
        f"Gateway default/edge: namespace default has {OPEN}",
        branch="gateway-in-the-default-namespace",
    ),
]


GATEWAY_ALLOWED: list[Allowed] = [
    # gateway-http-listener-redirect-only
    Allowed(REDIRECT, {"spec.parentRefs.0.name": "elsewhere"}, API_ROUTE, branch="gateway-not-in-the-plan"),
    Allowed(
        REDIRECT,
        {"spec.parentRefs.0.name": "elsewhere", "spec.parentRefs.0.sectionName": DELETE},
        API_ROUTE,
        branch="gateway-not-in-the-plan-any-listener",
    ),
    Allowed(
        REDIRECT,
        # A mesh route (GAMMA): its parent is a Service of the core group, not the Gateway.
        {"spec.parentRefs.0": {"group": "", "kind": "Service", "name": "edge", "namespace": EDGE_NS}},
        API_ROUTE,
        branch="parent-is-a-service",
    ),
    Allowed(
        REDIRECT,
        {
            "spec.parentRefs.0": {
                "group": "example.com",
                "kind": "Gateway",
                "name": "edge",
                "namespace": EDGE_NS,
            }
        },
        API_ROUTE,
        branch="parent-is-another-apis-gateway",
    ),
    Allowed(
        REDIRECT,
        # Group "" is the core group: no Gateway API Gateway is named, the route attaches nowhere.
        {"spec.parentRefs.0": {"group": "", "kind": "Gateway", "name": "edge", "namespace": EDGE_NS}},
        API_ROUTE,
        branch="gateway-kind-of-the-core-group",
    ),
    Allowed(
        REDIRECT,
        # Only the listeners on the parentRef's port: the HTTPS one.
        {"spec.parentRefs.0.sectionName": DELETE, "spec.parentRefs.0.port": 443.0},
        API_ROUTE,
        branch="port-of-the-https-listener",
    ),
    Allowed(
        REDIRECT,
        # sectionName and port must both match one listener: http listens on 80, not 8080.
        {"spec.parentRefs.0.sectionName": "http", "spec.parentRefs.0.port": 8080.0},
        API_ROUTE,
        branch="section-and-port-of-no-listener",
    ),
    Allowed(
        REDIRECT,
        # On every listener, but for a hostname the plain-HTTP listener (api.example.com) does not take.
        {"spec.parentRefs.0.sectionName": DELETE, "spec.hostnames": ["www.example.com"]},
        API_ROUTE,
        branch="hostname-the-listener-does-not-take",
    ),
    Allowed(
        REDIRECT,
        # *.api.example.com covers names below api.example.com, not api.example.com itself.
        {"spec.parentRefs.0.sectionName": DELETE, "spec.hostnames": ["*.api.example.com"]},
        API_ROUTE,
        branch="wildcard-below-the-listener-hostname",
    ),
    # gateway-route-no-internal-paths
    Allowed(
        INTERNAL,
        # Exact / matches only /; Exact /metrics/ not /metrics.
        {
            "spec.rules.0.matches.0": {"path": {"type": "Exact", "value": "/"}},
            "spec.rules.0.matches.1": {"path": {"type": "Exact", "value": "/metrics/"}},
        },
        API_ROUTE,
        branch="exact-root-and-exact-with-slash",
    ),
    Allowed(
        INTERNAL,
        {"spec.rules.0.matches.1": {"path": {"type": "PathPrefix", "value": "/metricsx/"}}},
        API_ROUTE,
        branch="prefix-sharing-only-characters",
    ),
    # k8s-load-balancer-only-gateway
    Allowed(
        LOAD_BALANCER,
        {
            "values": {
                "controller": {"service": {"type": "ClusterIP"}},
                "ports": ["http", {"type": "NodePort"}],
            }
        },
        HELM,
        branch="cluster-ip-service",
    ),
    # gateway-cross-namespace-backend-granted
    Allowed(
        GRANTED,
        _backend_in_shared(
            _grant("import", to={"group": MULTICLUSTER, "kind": "ServiceImport"}),
            backend={"group": MULTICLUSTER, "kind": "ServiceImport", "name": "api", "port": 8000.0},
        ),
        branch="granted-service-import",
    ),
    Allowed(
        GRANTED,
        _backend_in_shared(_grant("elsewhere", namespace="other"), _grant("here")),
        branch="grant-after-one-in-another-namespace",
    ),
    Allowed(
        GRANTED,
        # An unset name (written out empty) grants every Service of the namespace.
        _backend_in_shared(_grant("all-services", to={"group": "", "kind": "Service", "name": ""})),
        branch="grant-with-empty-name",
    ),
    Allowed(
        GRANTED,
        _backend_in_shared(_grant("all-services", to={"kind": "Service"})),
        branch="grant-without-group-or-name",
    ),
]
