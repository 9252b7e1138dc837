"""The workloads' NetworkPolicies: everything in the namespace, in and out, is denied unless a policy
here allows it. Pure builders: the component declares one NetworkPolicy per :class:`PolicyPlan`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.platform import INGRESS_CONTROLLER_LABELS
from components.workloads.contract import API_PORT, selector_labels

DNS_PORT = 53
HTTPS_PORT = 443
POSTGRES_PORT = 5432
ACME_SOLVER_PORT = 8089


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


def egress_rules(
    vpc_cidr: str, redis_port: pulumi.Input[int], *, redis: bool
) -> list[k8s.networking.v1.NetworkPolicyEgressRuleArgs]:
    """DNS to CoreDNS, Postgres (and Redis) inside the VPC, HTTPS anywhere (AWS APIs, LLM, SDP)."""
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
    ]


def policy_plans(
    *, controller_namespace: str, vpc_cidr: str, redis_port: pulumi.Input[int], acme_http01: bool
) -> list[PolicyPlan]:
    """Default-deny, the ingress controller to the API, each component's egress and, with HTTP-01,
    the controller to cert-manager's solver pods."""
    controller = peer_pods(controller_namespace, INGRESS_CONTROLLER_LABELS)
    plans = [
        # An empty rule list in both directions: everything in the namespace is denied by default.
        PolicyPlan("default-deny", {}, ingress=[], egress=[]),
        PolicyPlan(
            "api-from-ingress-controller",
            selector_labels("api"),
            ingress=[
                k8s.networking.v1.NetworkPolicyIngressRuleArgs(from_=[controller], ports=[tcp(API_PORT)])
            ],
        ),
        *(
            PolicyPlan(
                f"{component}-egress",
                selector_labels(component),
                egress=egress_rules(vpc_cidr, redis_port, redis=True),
            )
            for component in ("api", "worker")
        ),
        PolicyPlan(
            "migrations-egress",
            selector_labels("migrations"),
            egress=egress_rules(vpc_cidr, redis_port, redis=False),
        ),
    ]
    if acme_http01:
        # cert-manager answers HTTP-01 challenges from solver pods it starts in this namespace.
        plans.append(
            PolicyPlan(
                "acme-http01-solver",
                {"acme.cert-manager.io/http01-solver": "true"},
                ingress=[
                    k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                        from_=[controller], ports=[tcp(ACME_SOLVER_PORT)]
                    )
                ],
            )
        )
    return plans


def policy_spec(plan: PolicyPlan) -> k8s.networking.v1.NetworkPolicySpecArgs:
    types = [t for t, rules in (("Ingress", plan.ingress), ("Egress", plan.egress)) if rules is not None]
    return k8s.networking.v1.NetworkPolicySpecArgs(
        pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=dict(plan.pod_selector) or None),
        policy_types=types,
        ingress=list(plan.ingress) if plan.ingress else None,
        egress=list(plan.egress) if plan.egress else None,
    )
