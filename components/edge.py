"""The internet edge: Envoy Gateway behind an AWS NLB, serving one Gateway for the API.

Installs, in its own namespace (PSS ``restricted``: the proxies run as non-root on unprivileged ports;
the namespace and the CRDs come first, from components/edge_crds.py) the controller (pinned, no AWS
access: the NLB comes from the annotations on the Service it generates), with the namespace's
NetworkPolicies (components/edge_network_policies.py) in place before it. Declares what the edge
guarantees as objects the plan and the policy pack see:

- a Gateway with an HTTPS listener (certificate from cert-manager, the stack's ClusterIssuer) and an
  HTTP listener that admits only this namespace's routes, i.e. the 301 redirect below (and cert-manager's
  HTTP-01 solver routes, which are more specific);
- a ClientTrafficPolicy: TLS 1.2 minimum with forward-secret AEAD ciphers, proxy protocol from the NLB
  (the client address for logs and rate limits), request header size, client timeouts.

The API's routes live with the workloads (components/workloads/ingress.py), next to their Service.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.edge_crds import CHART_REGISTRY, EDGE_NAMESPACE, EdgeCrds
from components.edge_network_policies import edge_policy_plans
from components.edge_settings import EdgeSettings
from components.workloads.network_policies import PolicyPlan, policy_spec

GATEWAY_NAME = "edge"
GATEWAY_CLASS = "envoy-gateway"
CONTROLLER_NAME = "gateway.envoyproxy.io/gatewayclass-controller"
ENVOY_PROXY = "edge-proxy"
HTTPS_LISTENER = "https"
HTTP_LISTENER = "http"
HTTPS_PORT = 443
HTTP_PORT = 80
GATEWAY_API = "gateway.networking.k8s.io/v1"
ENVOY_API = "gateway.envoyproxy.io/v1alpha1"
# The Secret cert-manager writes the listener's certificate into (TLS material, not an app secret).
TLS_SECRET = "api-tls"  # noqa: S105

# Labels Envoy Gateway puts on the proxy pods of one Gateway; the app's NetworkPolicy admits exactly these.
PROXY_LABELS = {
    "app.kubernetes.io/name": "envoy",
    "app.kubernetes.io/component": "proxy",
    "gateway.envoyproxy.io/owning-gateway-name": GATEWAY_NAME,
}
# The proxies' Prometheus endpoint: Envoy Gateway names the container port of STATS_PORT (19001,
# components/edge_network_policies.py) `metrics` and serves Envoy's stats there at this path. The proxies'
# Service does not expose the port, so Prometheus scrapes the pods (a PodMonitor).
PROXY_METRICS_PORT = "metrics"
PROXY_METRICS_PATH = "/stats/prometheus"

# TLS 1.2 suites with forward secrecy and AEAD only (TLS 1.3 suites are not configurable and all modern).
TLS_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
)

# An internet-facing NLB in the public subnets, across zones, sending proxy protocol v2 so Envoy sees the
# client address even where the NLB's targets are not the pods themselves.
NLB_ANNOTATIONS = {
    "service.beta.kubernetes.io/aws-load-balancer-type": "nlb",
    "service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing",
    "service.beta.kubernetes.io/aws-load-balancer-cross-zone-load-balancing-enabled": "true",
    "service.beta.kubernetes.io/aws-load-balancer-backend-protocol": "tcp",
    "service.beta.kubernetes.io/aws-load-balancer-proxy-protocol": "*",
}


def gateway_ref() -> dict[str, str]:
    return {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": GATEWAY_NAME}


def controller_values(replicas: int) -> dict[str, Any]:
    return {
        "deployment": {"replicas": replicas},
        "podDisruptionBudget": {"minAvailable": 1},
    }


def envoy_proxy_spec(settings: EdgeSettings) -> dict[str, Any]:
    """How Envoy Gateway runs the proxies: behind the NLB (the only LoadBalancer Service), spread over zones."""
    return {
        "provider": {
            "type": "Kubernetes",
            "kubernetes": {
                "envoyService": {
                    "type": "LoadBalancer",
                    # No second hop through another node: keeps the client address and avoids SNAT.
                    "externalTrafficPolicy": "Local",
                    "annotations": NLB_ANNOTATIONS,
                    "loadBalancerSourceRanges": list(settings.allowed_cidrs),
                },
                "envoyDeployment": {
                    "replicas": settings.proxy_replicas,
                    "pod": {
                        "topologySpreadConstraints": [
                            {
                                "maxSkew": 1,
                                "topologyKey": "topology.kubernetes.io/zone",
                                "whenUnsatisfiable": "ScheduleAnyway",
                                "labelSelector": {"matchLabels": PROXY_LABELS},
                            }
                        ]
                    },
                    "container": {
                        "resources": {
                            "requests": {"cpu": "100m", "memory": "128Mi"},
                            "limits": {"memory": "512Mi"},
                        }
                    },
                },
                "envoyPDB": {"minAvailable": 1},
            },
        }
    }


def gateway_spec(hostname: str, app_namespace: str) -> dict[str, Any]:
    """HTTPS for the app namespace's routes; HTTP only for this namespace's (the redirect, ACME)."""
    return {
        "gatewayClassName": GATEWAY_CLASS,
        "listeners": [
            {
                "name": HTTPS_LISTENER,
                "protocol": "HTTPS",
                "port": HTTPS_PORT,
                "hostname": hostname,
                "tls": {"mode": "Terminate", "certificateRefs": [{"kind": "Secret", "name": TLS_SECRET}]},
                "allowedRoutes": {
                    "namespaces": {
                        "from": "Selector",
                        "selector": {"matchLabels": {"kubernetes.io/metadata.name": app_namespace}},
                    },
                    "kinds": [{"kind": "HTTPRoute"}],
                },
            },
            {
                "name": HTTP_LISTENER,
                "protocol": "HTTP",
                "port": HTTP_PORT,
                "hostname": hostname,
                "allowedRoutes": {"namespaces": {"from": "Same"}, "kinds": [{"kind": "HTTPRoute"}]},
            },
        ],
    }


def redirect_route_spec(hostname: str) -> dict[str, Any]:
    """Everything on the HTTP listener answers 301 to the same URL over https."""
    return {
        "parentRefs": [{"name": GATEWAY_NAME, "sectionName": HTTP_LISTENER}],
        "hostnames": [hostname],
        "rules": [
            {
                "filters": [
                    {"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 301}}
                ]
            }
        ],
    }


def client_traffic_spec(settings: EdgeSettings) -> dict[str, Any]:
    return {
        "targetRefs": [gateway_ref()],
        "tls": {
            "minVersion": "1.2",
            "maxVersion": "1.3",
            "ciphers": list(TLS_CIPHERS),
            "alpnProtocols": ["h2", "http/1.1"],
        },
        "enableProxyProtocol": True,
        # Envoy's default is 60 KiB; a webhook's headers are a few hundred bytes.
        "http1": {"maxRequestHeadersKB": settings.max_request_headers_kib},
        # Headers with underscores are a request-smuggling vector through proxies that normalise them.
        "headers": {"withUnderscoresAction": "RejectRequest"},
        "timeout": {
            "http": {"requestReceivedTimeout": f"{settings.request_timeout_seconds}s", "idleTimeout": "60s"}
        },
    }


def certificate_spec(hostname: str, cluster_issuer: str) -> dict[str, Any]:
    return {
        "secretName": TLS_SECRET,
        "dnsNames": [hostname],
        "issuerRef": {"group": "cert-manager.io", "kind": "ClusterIssuer", "name": cluster_issuer},
        "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
    }


@dataclass(frozen=True)
class EdgeArgs:
    settings: EdgeSettings
    provider: k8s.Provider
    # The namespace and the CRDs, installed ahead of cert-manager (components/edge_crds.py).
    crds: EdgeCrds
    # The API's public name and the namespace whose HTTPRoutes may attach to the HTTPS listener.
    hostname: str
    app_namespace: str
    cluster_issuer: str
    # The certificate waits for cert-manager and its issuer (their CRDs and webhook).
    cert_manager: Sequence[pulumi.Resource]
    # The NetworkPolicies: the VPC (the Kubernetes API's private endpoint, its webhook calls), whether
    # cert-manager's HTTP-01 solver pods run here, and who scrapes metrics.
    vpc_cidr: str
    acme_http01: bool
    monitoring_namespace: str
    prometheus_labels: Mapping[str, str]
    controller_replicas: int = 2


class Edge(pulumi.ComponentResource):
    """Envoy Gateway, the namespace's NetworkPolicies and the API's Gateway with its TLS and client
    policies."""

    namespace: str
    gateway_name: str
    # What the app's routes wait for: the Gateway (and the CRDs of every kind they use).
    route_dependencies: list[pulumi.Resource]

    def __init__(self, name: str, args: EdgeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ai-agents:edge:Edge", name, None, opts)
        self._name = name
        self._on_cluster = pulumi.ResourceOptions(parent=self, provider=args.provider)
        settings = args.settings
        ns, crds = args.crds.namespace, args.crds.release

        # In place before the controller's chart: its certgen hook Job and the controller start denied
        # everything but what these allow, never open.
        policies = [self._network_policy(plan, ns) for plan in self._policy_plans(args)]
        controller = k8s.helm.v3.Release(
            f"{name}-envoy-gateway",
            name="envoy-gateway",
            chart=f"{CHART_REGISTRY}/gateway-helm",
            version=settings.envoy_gateway_chart_version,
            namespace=ns.metadata.name,
            values=controller_values(args.controller_replicas),
            # The CRDs are the other release's: upgrading them is a reviewed version bump of that one.
            skip_crds=True,
            # A failed upgrade rolls back instead of leaving a half-installed controller.
            atomic=True,
            cleanup_on_fail=True,
            opts=self._on_cluster.merge(pulumi.ResourceOptions(depends_on=[crds, *policies])),
        )
        after_crds = [crds, controller]
        proxy = self._custom("EnvoyProxy", ENVOY_PROXY, ENVOY_API, envoy_proxy_spec(settings), after_crds)
        gateway_class = k8s.apiextensions.CustomResource(
            f"{name}-gatewayclass",
            api_version=GATEWAY_API,
            kind="GatewayClass",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=GATEWAY_CLASS),
            spec={
                "controllerName": CONTROLLER_NAME,
                "parametersRef": {
                    "group": "gateway.envoyproxy.io",
                    "kind": "EnvoyProxy",
                    "name": ENVOY_PROXY,
                    "namespace": EDGE_NAMESPACE,
                },
            },
            opts=self._on_cluster.merge(pulumi.ResourceOptions(depends_on=[proxy, *after_crds])),
        )
        certificate = self._custom(
            "Certificate",
            TLS_SECRET,
            "cert-manager.io/v1",
            certificate_spec(args.hostname, args.cluster_issuer),
            [ns, *args.cert_manager],
        )
        gateway = self._custom(
            "Gateway",
            GATEWAY_NAME,
            GATEWAY_API,
            gateway_spec(args.hostname, args.app_namespace),
            [gateway_class, certificate],
        )
        self._custom(
            "HTTPRoute", "https-redirect", GATEWAY_API, redirect_route_spec(args.hostname), [gateway]
        )
        self._custom(
            "ClientTrafficPolicy", "edge-client", ENVOY_API, client_traffic_spec(settings), [gateway]
        )

        self.namespace = EDGE_NAMESPACE
        self.gateway_name = GATEWAY_NAME
        self.route_dependencies = [gateway, *after_crds]
        self.register_outputs({"namespace": EDGE_NAMESPACE, "gateway": GATEWAY_NAME})

    @staticmethod
    def _policy_plans(args: EdgeArgs) -> list[PolicyPlan]:
        return edge_policy_plans(
            namespace=EDGE_NAMESPACE,
            proxy_labels=PROXY_LABELS,
            listener_ports=(HTTPS_PORT, HTTP_PORT),
            app_namespace=args.app_namespace,
            vpc_cidr=args.vpc_cidr,
            monitoring_namespace=args.monitoring_namespace,
            prometheus_labels=args.prometheus_labels,
            acme_http01=args.acme_http01,
        )

    def _network_policy(self, plan: PolicyPlan, ns: k8s.core.v1.Namespace) -> k8s.networking.v1.NetworkPolicy:
        return k8s.networking.v1.NetworkPolicy(
            f"{self._name}-netpol-{plan.name}",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=plan.name, namespace=EDGE_NAMESPACE),
            spec=policy_spec(plan),
            opts=self._on_cluster.merge(pulumi.ResourceOptions(depends_on=[ns])),
        )

    def _custom(
        self,
        kind: str,
        name: str,
        api_version: str,
        spec: Mapping[str, Any],
        depends_on: Sequence[pulumi.Resource],
    ) -> k8s.apiextensions.CustomResource:
        return k8s.apiextensions.CustomResource(
            f"{self._name}-{kind.lower()}-{name}",
            api_version=api_version,
            kind=kind,
            metadata=k8s.meta.v1.ObjectMetaArgs(name=name, namespace=EDGE_NAMESPACE),
            spec=dict(spec),
            opts=self._on_cluster.merge(pulumi.ResourceOptions(depends_on=list(depends_on))),
        )
