"""The workloads' NetworkPolicies: everything in the namespace, in and out, is denied unless a policy
here allows it. Pure builders: the component declares one NetworkPolicy per :class:`PolicyPlan`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.workloads.contract import API_PORT, selector_labels

DNS_PORT = 53
HTTPS_PORT = 443
POSTGRES_PORT = 5432


@dataclass(frozen=True)
class PolicyPlan:
    """One NetworkPolicy: the pods it selects and the traffic it allows (None: that direction untouched)."""

    name: str
    pod_selector: Mapping[str, str]
    ingress: Sequence[k8s.networking.v1.NetworkPolicyIngressRuleArgs] | None = None
    egress: Sequence[k8s.networking.v1.NetworkPolicyEgressRuleArgs] | None = None


def peer_pods(namespace: str, pod_labels: Mapping[str, str]) -> k8s.networking.v1.NetworkPolicyPeerArgs:
    return k8s.networking.v1.NetworkPolicyPeerArgs(
        namespace_selector=k8s.meta.v1.LabelSelectorArgs(
            match_labels={"kubernetes.io/metadata.name": namespace}
        ),
        pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=dict(pod_labels)),
    )


def tcp(port: pulumi.Input[int | str]) -> k8s.networking.v1.NetworkPolicyPortArgs:
    return k8s.networking.v1.NetworkPolicyPortArgs(protocol="TCP", port=port)


@dataclass(frozen=True)
class Destination:
    """Pods in another namespace that a component may open one TCP port on (e.g. the trace collector)."""

    namespace: str
    pod_labels: Mapping[str, str]
    port: int


def egress_rules(
    vpc_cidr: str, redis_port: pulumi.Input[int], *, redis: bool, also: Sequence[Destination] = ()
) -> list[k8s.networking.v1.NetworkPolicyEgressRuleArgs]:
    """DNS to CoreDNS, Postgres (and Redis) inside the VPC, HTTPS anywhere (AWS APIs, LLM, SDP), and
    each of ``also``."""
    dns = k8s.networking.v1.NetworkPolicyEgressRuleArgs(
        to=[peer_pods("kube-system", {"k8s-app": "kube-dns"})],
        ports=[k8s.networking.v1.NetworkPolicyPortArgs(protocol=p, port=DNS_PORT) for p in ("UDP", "TCP")],
    )
    vpc = [k8s.networking.v1.NetworkPolicyPeerArgs(ip_block=k8s.networking.v1.IPBlockArgs(cidr=vpc_cidr))]
    data_ports = [tcp(POSTGRES_PORT), *([tcp(redis_port)] if redis else [])]
    return [
        dns,
        k8s.networking.v1.NetworkPolicyEgressRuleArgs(to=vpc, ports=data_ports),
        k8s.networking.v1.NetworkPolicyEgressRuleArgs(
            to=[
                k8s.networking.v1.NetworkPolicyPeerArgs(
                    ip_block=k8s.networking.v1.IPBlockArgs(cidr="0.0.0.0/0")
                )
            ],
            ports=[tcp(HTTPS_PORT)],
        ),
        *(
            k8s.networking.v1.NetworkPolicyEgressRuleArgs(
                to=[peer_pods(d.namespace, d.pod_labels)], ports=[tcp(d.port)]
            )
            for d in also
        ),
    ]


def policy_plans(
    *,
    controller_namespace: str,
    controller_labels: Mapping[str, str],
    vpc_cidr: str,
    redis_port: pulumi.Input[int],
    services_also_reach: Sequence[Destination] = (),
) -> list[PolicyPlan]:
    """Default-deny, the edge's proxy pods to the API, each component's egress. (cert-manager's HTTP-01
    solver pods run in the edge's namespace, next to the Certificate, not here.)"""
    proxies = peer_pods(controller_namespace, controller_labels)
    return [
        # An empty rule list in both directions: everything in the namespace is denied by default.
        PolicyPlan("default-deny", {}, ingress=[], egress=[]),
        PolicyPlan(
            "api-from-gateway",
            selector_labels("api"),
            ingress=[k8s.networking.v1.NetworkPolicyIngressRuleArgs(from_=[proxies], ports=[tcp(API_PORT)])],
        ),
        *(
            PolicyPlan(
                f"{component}-egress",
                selector_labels(component),
                egress=egress_rules(vpc_cidr, redis_port, redis=True, also=services_also_reach),
            )
            for component in ("api", "worker")
        ),
        PolicyPlan(
            "migrations-egress",
            selector_labels("migrations"),
            egress=egress_rules(vpc_cidr, redis_port, redis=False),
        ),
    ]


def policy_spec(plan: PolicyPlan) -> k8s.networking.v1.NetworkPolicySpecArgs:
    types = [t for t, rules in (("Ingress", plan.ingress), ("Egress", plan.egress)) if rules is not None]
    return k8s.networking.v1.NetworkPolicySpecArgs(
        pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=dict(plan.pod_selector) or None),
        policy_types=types,
        ingress=list(plan.ingress) if plan.ingress else None,
        egress=list(plan.egress) if plan.egress else None,
    )
