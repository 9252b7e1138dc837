"""The edge namespace's NetworkPolicies: everything in it, in and out, is denied unless a policy here
allows it. Pure builders, like the workloads' (components/workloads/network_policies.py, whose
:class:`PolicyPlan`, peers and ports they reuse); the Edge component declares one NetworkPolicy per plan.

Ports and labels are Envoy Gateway v1.9's and cert-manager v1.19's own (their sources, read 2026-12-02:
envoyproxy/gateway ``internal/xds/bootstrap/bootstrap.go``, ``internal/gatewayapi/translator.go``,
``charts/gateway-helm``; cert-manager ``pkg/issuer/acme/http``):

- the proxies bind each listener's port + 10000 when it is privileged (443 -> 10443, 80 -> 10080), so
  they run without ``NET_BIND_SERVICE``; stats (Prometheus) on 19001, readiness on 19003 (the kubelet's,
  which NetworkPolicies do not filter), admin on 19000 bound to localhost;
- the controller serves xDS on 18000, its metrics on 19001 and the topology-injector webhook on 9443;
  its rate-limit (18001) and Wasm (18002) ports serve features this edge does not use, so stay closed;
- cert-manager's HTTP-01 solver pods listen on 8089, in the Certificate's namespace: this one.
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi_kubernetes as k8s

from components.workloads.contract import API_PORT, selector_labels
from components.workloads.network_policies import PolicyPlan, peer_pods, tcp

DNS_PORT = 53
KUBE_API_PORT = 443
XDS_PORT = 18000
WEBHOOK_PORT = 9443
STATS_PORT = 19001
# Envoy Gateway shifts a privileged listener port by this much for the container to bind it unprivileged.
PORT_SHIFT = 10000
ACME_SOLVER_PORT = 8089

# The controller's pods (the gateway-helm chart's selector labels, release "envoy-gateway").
CONTROLLER_LABELS = {
    "control-plane": "envoy-gateway",
    "app.kubernetes.io/name": "gateway-helm",
    "app.kubernetes.io/instance": "envoy-gateway",
}
# The chart's pre-install/pre-upgrade Job that writes the controller's and proxies' xDS certificates.
CERTGEN_LABELS = {"app": "certgen"}
# cert-manager labels every HTTP-01 solver pod with this.
ACME_SOLVER_LABELS = {"acme.cert-manager.io/http01-solver": "true"}


def container_port(listener_port: int) -> int:
    """The port a proxy container binds for a Gateway listener's port."""
    return listener_port + PORT_SHIFT if listener_port < 1024 else listener_port


def cidr(block: str) -> k8s.networking.v1.NetworkPolicyPeerArgs:
    return k8s.networking.v1.NetworkPolicyPeerArgs(ip_block=k8s.networking.v1.IPBlockArgs(cidr=block))


def dns_egress() -> k8s.networking.v1.NetworkPolicyEgressRuleArgs:
    return k8s.networking.v1.NetworkPolicyEgressRuleArgs(
        to=[peer_pods("kube-system", {"k8s-app": "kube-dns"})],
        ports=[k8s.networking.v1.NetworkPolicyPortArgs(protocol=p, port=DNS_PORT) for p in ("UDP", "TCP")],
    )


def kube_api_egress(vpc_cidr: str) -> k8s.networking.v1.NetworkPolicyEgressRuleArgs:
    """The API server through the cluster's private endpoint: its network interfaces are in the VPC."""
    return k8s.networking.v1.NetworkPolicyEgressRuleArgs(to=[cidr(vpc_cidr)], ports=[tcp(KUBE_API_PORT)])


def edge_policy_plans(
    *,
    namespace: str,
    proxy_labels: Mapping[str, str],
    listener_ports: tuple[int, ...],
    app_namespace: str,
    vpc_cidr: str,
    monitoring_namespace: str,
    prometheus_labels: Mapping[str, str],
    acme_http01: bool,
) -> list[PolicyPlan]:
    """Default-deny; the internet to the proxies' listeners; proxies to the controller (xDS), the API and
    the HTTP-01 solvers; the control plane to the controller's webhook; Prometheus to both's metrics;
    the controller and certgen to the Kubernetes API."""
    proxies = peer_pods(namespace, proxy_labels)
    prometheus = peer_pods(monitoring_namespace, prometheus_labels)
    rule = k8s.networking.v1.NetworkPolicyIngressRuleArgs
    out = k8s.networking.v1.NetworkPolicyEgressRuleArgs
    proxy_egress = [
        dns_egress(),
        out(to=[peer_pods(namespace, CONTROLLER_LABELS)], ports=[tcp(XDS_PORT)]),
        out(to=[peer_pods(app_namespace, selector_labels("api"))], ports=[tcp(API_PORT)]),
    ]
    if acme_http01:
        proxy_egress.append(out(to=[peer_pods(namespace, ACME_SOLVER_LABELS)], ports=[tcp(ACME_SOLVER_PORT)]))
    plans = [
        # An empty rule list in both directions: everything in the namespace is denied by default.
        PolicyPlan("default-deny", {}, ingress=[], egress=[]),
        PolicyPlan(
            "proxy",
            proxy_labels,
            ingress=[
                # Any source: the NLB preserves client addresses, and its loadBalancerSourceRanges (not
                # this policy) is where the edge's allowed CIDRs are enforced.
                rule(ports=[tcp(container_port(p)) for p in listener_ports]),
                rule(from_=[prometheus], ports=[tcp(STATS_PORT)]),
            ],
            egress=proxy_egress,
        ),
        PolicyPlan(
            "controller",
            CONTROLLER_LABELS,
            ingress=[
                rule(from_=[proxies], ports=[tcp(XDS_PORT)]),
                # EKS calls admission webhooks from the control plane's network interfaces in the VPC.
                rule(from_=[cidr(vpc_cidr)], ports=[tcp(WEBHOOK_PORT)]),
                rule(from_=[prometheus], ports=[tcp(STATS_PORT)]),
            ],
            egress=[dns_egress(), kube_api_egress(vpc_cidr)],
        ),
        PolicyPlan("certgen", CERTGEN_LABELS, egress=[kube_api_egress(vpc_cidr)]),
    ]
    if acme_http01:
        plans.append(
            PolicyPlan(
                "acme-solver",
                ACME_SOLVER_LABELS,
                ingress=[rule(from_=[proxies], ports=[tcp(ACME_SOLVER_PORT)])],
            )
        )
    return plans
