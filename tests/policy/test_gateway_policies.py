"""The edge policies on variants the one-change cases do not cover: what must stay compliant (the
redirect on the HTTP listener, a granted cross-namespace backend) and what must not (a regex or
match-less rule reaching /metrics, a grant for another namespace)."""

from __future__ import annotations

import copy
from typing import Any

from tests.policy.gateway_cases import (
    API_ROUTE,
    EDGE_NS,
    NETWORK_POLICY,
    REFERENCE_GRANT,
    entry,
    gateway_resources,
)
from tests.policy.support import BY_NAME, violations

Plan = list[dict[str, Any]]


def route(plan: Plan) -> dict[str, Any]:
    return next(r for r in plan if (r["type"], r["name"]) == API_ROUTE)["props"]


def grant(from_namespace: str) -> dict[str, Any]:
    return entry(
        "api-from-ai-agents",
        REFERENCE_GRANT,
        "ReferenceGrant",
        "gateway.networking.k8s.io/v1beta1",
        {
            "from": [
                {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": from_namespace}
            ],
            "to": [{"group": "", "kind": "Service", "name": "api"}],
        },
        "shared",
    )


def names(plan: Plan, policy: str) -> list[str]:
    return [message for message, _ in violations(BY_NAME[policy], plan)]


def test_the_redirect_on_the_http_listener_is_compliant_and_a_backend_there_is_not() -> None:
    plan = gateway_resources()
    assert names(plan, "gateway-http-listener-redirect-only") == []
    redirect = next(r for r in plan if r["name"] == "https-redirect")["props"]
    redirect["spec"]["rules"][0]["backendRefs"] = [{"name": "api", "port": 8000.0}]
    assert len(names(plan, "gateway-http-listener-redirect-only")) == 1


def test_a_redirect_to_http_is_not_a_redirect_to_https() -> None:
    plan = gateway_resources()
    redirect = next(r for r in plan if r["name"] == "https-redirect")["props"]
    redirect["spec"]["rules"][0]["filters"][0]["requestRedirect"]["scheme"] = "http"
    assert len(names(plan, "gateway-http-listener-redirect-only")) == 1


def test_metrics_through_a_regex_or_a_rule_without_matches() -> None:
    for matches in ([{"path": {"type": "RegularExpression", "value": "/met.*"}}], None):
        plan = gateway_resources()
        rule = route(plan)["spec"]["rules"][0]
        if matches is None:
            del rule["matches"]
        else:
            rule["matches"] = matches
        assert names(plan, "gateway-route-no-internal-paths"), matches
    plan = gateway_resources()
    route(plan)["spec"]["rules"][0]["matches"] = [{"path": {"type": "PathPrefix", "value": "/metricsfoo"}}]
    assert names(plan, "gateway-route-no-internal-paths") == [], "/metricsfoo does not serve /metrics"


def test_a_cross_namespace_backend_needs_a_grant_from_the_routes_namespace() -> None:
    base = gateway_resources()
    route(base)["spec"]["rules"][0]["backendRefs"][0]["namespace"] = "shared"
    assert len(names(base, "gateway-cross-namespace-backend-granted")) == 1
    assert names([*copy.deepcopy(base), grant("ai-agents")], "gateway-cross-namespace-backend-granted") == []
    assert len(names([*copy.deepcopy(base), grant("other")], "gateway-cross-namespace-backend-granted")) == 1


def test_tls_13_only_is_fine_and_an_old_maximum_is_not() -> None:
    plan = gateway_resources()
    policy = next(r for r in plan if r["name"] == "edge-client")["props"]
    policy["spec"]["tls"] = {"minVersion": "1.3"}
    assert names(plan, "gateway-tls-minimum-1-2") == []
    policy["spec"]["tls"] = {"minVersion": "1.2", "maxVersion": "1.1"}
    assert len(names(plan, "gateway-tls-minimum-1-2")) == 1


def deny(plan: Plan) -> dict[str, Any]:
    return next(r for r in plan if r["type"] == NETWORK_POLICY)["props"]


def test_a_default_deny_with_a_selector_or_a_rule_does_not_close_the_gateway_namespace() -> None:
    assert names(gateway_resources(), "gateway-namespace-default-deny") == []
    for field, value in (
        ("podSelector", {"matchLabels": {"app.kubernetes.io/component": "proxy"}}),
        ("ingress", [{}]),  # one empty rule admits everything
        ("egress", [{"ports": [{"protocol": "TCP", "port": 443.0}]}]),
    ):
        plan = gateway_resources()
        deny(plan)["spec"][field] = value
        assert len(names(plan, "gateway-namespace-default-deny")) == 1, field


def test_a_default_deny_in_another_namespace_does_not_count() -> None:
    plan = gateway_resources()
    deny(plan)["metadata"]["namespace"] = "ai-agents"
    assert len(names(plan, "gateway-namespace-default-deny")) == 1
    plan = [r for r in gateway_resources() if r["type"] != NETWORK_POLICY]
    (message,) = names(plan, "gateway-namespace-default-deny")
    assert message.startswith(f"Gateway {EDGE_NS}/edge:")
