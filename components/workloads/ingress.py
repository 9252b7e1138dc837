"""How the API is published: HTTPRoutes in the app namespace attached to the edge's HTTPS listener
(components/edge.py), only the public paths, with security headers, timeouts, the webhook's body limit
and a per-client rate limit on the webhook route (Envoy Gateway policies next to the routes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi

from components.workloads.contract import API_PORT, EDGE_UPSTREAM_IDLE_SECONDS
from components.workloads.settings import AppSettings

GATEWAY_API = "gateway.networking.k8s.io/v1"
ENVOY_API = "gateway.envoyproxy.io/v1alpha1"

# Paths published on the internet. /metrics is deliberately absent: it is scraped in-cluster only.
WEBHOOK_PREFIX = "/webhook"
API_PREFIXES = ("/api", "/health")
DOCS_PREFIXES = ("/docs",)
DOCS_EXACT = ("/openapi.json",)  # the schema /docs renders

# Sent on every response of the API's routes. CSP is left to the app: it knows that /docs loads
# Swagger UI, and a CSP strict enough for the JSON API would break that page.
SECURITY_HEADERS = {
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
    "Cross-Origin-Opener-Policy": "same-origin",
}


@dataclass(frozen=True)
class Ingressing:
    """What the edge installed for publishing the API."""

    hostname: str
    gateway_name: str
    # The Gateway's namespace, where the proxy pods run (the NetworkPolicy admits them).
    controller_namespace: str
    controller_labels: Mapping[str, str]
    https_listener: str
    # Route /docs and /openapi.json (the stack's choice).
    publish_docs: bool
    request_timeout_seconds: int
    # Applied first: the Gateway and the CRDs of the route and policy kinds.
    depends_on: Sequence[pulumi.Resource] = ()


def path_matches(prefixes: Sequence[str], exact: Sequence[str] = ()) -> list[dict[str, Any]]:
    return [{"path": {"type": "PathPrefix", "value": p}} for p in prefixes] + [
        {"path": {"type": "Exact", "value": p}} for p in exact
    ]


def route_spec(
    ingress: Ingressing, service: pulumi.Input[str], matches: list[dict[str, Any]]
) -> dict[str, Any]:
    """One HTTPRoute rule on the HTTPS listener to ``service``, with the security headers and a timeout."""
    return {
        "parentRefs": [
            {
                "name": ingress.gateway_name,
                "namespace": ingress.controller_namespace,
                "sectionName": ingress.https_listener,
            }
        ],
        "hostnames": [ingress.hostname],
        "rules": [
            {
                "matches": matches,
                "backendRefs": [{"name": service, "port": API_PORT}],
                "filters": [
                    {
                        "type": "ResponseHeaderModifier",
                        "responseHeaderModifier": {
                            "set": [{"name": k, "value": v} for k, v in SECURITY_HEADERS.items()]
                        },
                    }
                ],
                "timeouts": {"request": f"{ingress.request_timeout_seconds}s"},
            }
        ],
    }


def routes(ingress: Ingressing, service: pulumi.Input[str]) -> dict[str, dict[str, Any]]:
    """HTTPRoute name → spec: the webhook (rate-limited) apart from the rest of the public API."""
    public = path_matches(API_PREFIXES)
    if ingress.publish_docs:
        public += path_matches(DOCS_PREFIXES, DOCS_EXACT)
    return {
        "api-webhook": route_spec(ingress, service, path_matches((WEBHOOK_PREFIX,))),
        "api": route_spec(ingress, service, public),
    }


def route_ref(name: str) -> dict[str, str]:
    return {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": name}


def backend_traffic_spec(settings: AppSettings, route: str, *, rate_limited: bool) -> dict[str, Any]:
    """The webhook's body limit on every route; on the webhook, a per-client-address rate limit (local to
    each proxy replica; the client address comes from proxy protocol)."""
    spec: dict[str, Any] = {
        "targetRefs": [route_ref(route)],
        "requestBuffer": {"limit": f"{settings.max_body_kib}Ki"},
        # Envoy's default is an hour, longer than uvicorn keeps a connection (contract.py says why not).
        "timeout": {"http": {"connectionIdleTimeout": f"{EDGE_UPSTREAM_IDLE_SECONDS}s"}},
    }
    if rate_limited:
        spec["rateLimit"] = {
            "type": "Local",
            "local": {
                "rules": [
                    {
                        "clientSelectors": [{"sourceCIDR": {"type": "Distinct", "value": "0.0.0.0/0"}}],
                        "limit": {"requests": settings.rate_limit_rps, "unit": "Second"},
                    }
                ]
            },
        }
    return spec


def cors_spec(settings: AppSettings, route: str) -> dict[str, Any]:
    """Envoy Gateway SecurityPolicy: CORS for the configured browser origins only."""
    return {
        "targetRefs": [route_ref(route)],
        "cors": {
            "allowOrigins": list(settings.cors_origins),
            "allowMethods": ["GET", "POST", "OPTIONS"],
            "allowHeaders": ["Authorization", "Content-Type", "X-ServiceDesk-Signature"],
            "allowCredentials": False,
            "maxAge": "600s",
        },
    }
