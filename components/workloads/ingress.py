"""How the API is published: one Ingress of the platform's class, TLS from its ClusterIssuer, HTTPS
only, per-client rate limit, body size and CORS, and only the public routes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.workloads.settings import AppSettings

# Paths published on the internet. /metrics is deliberately absent: it is scraped in-cluster only.
PUBLIC_PREFIXES = ("/webhook", "/api", "/health", "/docs")
PUBLIC_EXACT = ("/openapi.json",)  # the schema /docs renders

ISSUER_ANNOTATION = "cert-manager.io/cluster-issuer"
# The Secret cert-manager writes the API's certificate into (TLS material, not an application secret).
TLS_SECRET = "api-tls"  # noqa: S105


@dataclass(frozen=True)
class Ingressing:
    """What the platform installed for publishing the API."""

    hostname: str
    cluster_issuer: str
    ingress_class: str
    controller_namespace: str
    # HTTP-01 challenges are answered by solver pods in this namespace; they must be reachable.
    acme_http01: bool
    # Applied first: the ingress controller (its webhook validates Ingresses) and the ClusterIssuer.
    depends_on: Sequence[pulumi.Resource] = ()


def ingress_annotations(settings: AppSettings, cluster_issuer: str) -> dict[str, str]:
    """TLS from cert-manager, HTTPS only, body size, per-client rate limit, CORS (security headers are
    added controller-wide, see components/platform.py)."""
    prefix = "nginx.ingress.kubernetes.io"
    annotations = {
        ISSUER_ANNOTATION: cluster_issuer,
        f"{prefix}/ssl-redirect": "true",
        f"{prefix}/force-ssl-redirect": "true",
        f"{prefix}/proxy-body-size": f"{settings.max_body_kib}k",
        f"{prefix}/limit-rps": str(settings.rate_limit_rps),
        f"{prefix}/limit-burst-multiplier": "3",
        f"{prefix}/proxy-connect-timeout": "5",
        f"{prefix}/proxy-read-timeout": "30",
        f"{prefix}/proxy-send-timeout": "30",
    }
    if settings.cors_origins:
        annotations |= {
            f"{prefix}/enable-cors": "true",
            f"{prefix}/cors-allow-origin": ", ".join(settings.cors_origins),
            f"{prefix}/cors-allow-methods": "GET, POST, OPTIONS",
            f"{prefix}/cors-allow-headers": "Authorization, Content-Type, X-ServiceDesk-Signature",
            f"{prefix}/cors-allow-credentials": "false",
            f"{prefix}/cors-max-age": "600",
        }
    return annotations


def ingress_paths(service: pulumi.Input[str]) -> list[k8s.networking.v1.HTTPIngressPathArgs]:
    backend = k8s.networking.v1.IngressBackendArgs(
        service=k8s.networking.v1.IngressServiceBackendArgs(
            name=service, port=k8s.networking.v1.ServiceBackendPortArgs(name="http")
        )
    )
    return [
        k8s.networking.v1.HTTPIngressPathArgs(path=path, path_type=kind, backend=backend)
        for kind, paths in (("Prefix", PUBLIC_PREFIXES), ("Exact", PUBLIC_EXACT))
        for path in paths
    ]


def ingress_spec(ingress: Ingressing, service: pulumi.Input[str]) -> k8s.networking.v1.IngressSpecArgs:
    """The API's host, with the certificate cert-manager keeps in TLS_SECRET, routed to ``service``."""
    return k8s.networking.v1.IngressSpecArgs(
        ingress_class_name=ingress.ingress_class,
        tls=[k8s.networking.v1.IngressTLSArgs(hosts=[ingress.hostname], secret_name=TLS_SECRET)],
        rules=[
            k8s.networking.v1.IngressRuleArgs(
                host=ingress.hostname,
                http=k8s.networking.v1.HTTPIngressRuleValueArgs(paths=ingress_paths(service)),
            )
        ],
    )
