"""Network: no internet ingress except HTTP(S) on the load balancer, data tier reachable only from the
cluster, VPC flow logs on.

Security-group rules come in three shapes, all handled by :func:`ingress_rules`: inline ``ingress`` on
``aws:ec2/securityGroup:SecurityGroup``; ``aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule``;
and ``aws:ec2/securityGroupRule:SecurityGroupRule`` with ``type: ingress``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from policy.core import (
    Resource,
    StackResource,
    by_type,
    dicts,
    is_true,
    number,
    resource_policy,
    stack_policy,
    strings,
)
from policy.settings import PolicySettings

SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
DEFAULT_SECURITY_GROUP = "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"
INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
LEGACY_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
RULE_TYPES = (SECURITY_GROUP, DEFAULT_SECURITY_GROUP, INGRESS_RULE, LEGACY_RULE)
VPC = "aws:ec2/vpc:Vpc"
FLOW_LOG = "aws:ec2/flowLog:FlowLog"
RDS_INSTANCE = "aws:rds/instance:Instance"
CACHE_GROUP = "aws:elasticache/replicationGroup:ReplicationGroup"
CLUSTER_TYPES = ("eks:index:Cluster", "aws:eks/cluster:Cluster")
OPEN_CIDRS = frozenset({"0.0.0.0/0", "::/0"})
ALL_PROTOCOLS = {"-1", "all"}


@dataclass(frozen=True)
class IngressRule:
    """One ingress permission, whatever resource shape declared it."""

    cidrs: tuple[str, ...]
    prefix_lists: tuple[str, ...]
    source_groups: tuple[str, ...]
    self_reference: bool
    protocol: str
    from_port: float | None
    to_port: float | None

    def ports(self) -> str:
        if self.protocol in ALL_PROTOCOLS:
            return "all ports"
        if self.from_port == self.to_port:
            return f"port {self.from_port:g}" if self.from_port is not None else "any port"
        return (
            f"ports {self.from_port:g}-{self.to_port:g}"
            if self.from_port is not None and self.to_port is not None
            else "any port"
        )

    def only_ports(self, allowed: Sequence[int]) -> bool:
        return (
            self.protocol not in ALL_PROTOCOLS
            and self.from_port is not None
            and self.from_port == self.to_port
            and int(self.from_port) in allowed
        )


def _rule(raw: Mapping[str, Any], cidrs: list[str], sources: list[str], protocol_key: str) -> IngressRule:
    return IngressRule(
        cidrs=tuple(cidrs),
        prefix_lists=tuple(strings(raw.get("prefixListIds")) + strings(raw.get("prefixListId"))),
        source_groups=tuple(sources),
        self_reference=is_true(raw.get("self")),
        protocol=str(raw.get(protocol_key) or "-1").lower(),
        from_port=number(raw.get("fromPort")),
        to_port=number(raw.get("toPort")),
    )


def ingress_rules(resource_type: str, props: Mapping[str, Any]) -> list[IngressRule]:
    """Every ingress permission a security group or rule resource declares."""
    if resource_type in (SECURITY_GROUP, DEFAULT_SECURITY_GROUP):
        return [
            _rule(
                raw,
                strings(raw.get("cidrBlocks")) + strings(raw.get("ipv6CidrBlocks")),
                strings(raw.get("securityGroups")),
                "protocol",
            )
            for raw in dicts(props.get("ingress"))
        ]
    if resource_type == INGRESS_RULE:
        cidrs = strings(props.get("cidrIpv4")) + strings(props.get("cidrIpv6"))
        return [_rule(props, cidrs, strings(props.get("referencedSecurityGroupId")), "ipProtocol")]
    if resource_type == LEGACY_RULE and props.get("type") == "ingress":
        cidrs = strings(props.get("cidrBlocks")) + strings(props.get("ipv6CidrBlocks"))
        return [_rule(props, cidrs, strings(props.get("sourceSecurityGroupId")), "protocol")]
    return []


def _no_public_ingress(r: Resource) -> Iterator[str]:
    load_balancer = re.search(r.settings.load_balancer_security_group_pattern, r.name) is not None
    for rule in ingress_rules(r.type, r.props):
        open_cidrs = sorted(OPEN_CIDRS.intersection(rule.cidrs))
        if not open_cidrs:
            continue
        if load_balancer and rule.only_ports(r.settings.public_ingress_ports):
            continue
        yield f"{r.name} admits {', '.join(open_cidrs)} on {rule.ports()}."


def _flow_logs(
    resources: Sequence[StackResource], _settings: PolicySettings
) -> Iterator[tuple[str, str | None]]:
    logged = {dep for log in by_type(resources, FLOW_LOG) for dep in log.dependencies}
    for vpc in by_type(resources, VPC):
        if vpc.urn not in logged:
            yield f"VPC {vpc.name} has no flow log: rejected and accepted traffic leaves no trace.", vpc.urn


def _descendants(resources: Sequence[StackResource], roots: set[str]) -> set[str]:
    """``roots`` and every resource parented (transitively) to one of them."""
    found = set(roots)
    changed = True
    while changed:
        added = {r.urn for r in resources if r.parent in found and r.urn not in found}
        found |= added
        changed = bool(added)
    return found


def _data_rule_problem(rule: IngressRule, from_cluster: bool) -> str | None:
    if rule.cidrs or rule.prefix_lists:
        return f"admits address ranges {', '.join(rule.cidrs + rule.prefix_lists)} on {rule.ports()}"
    if rule.self_reference:
        return "admits its own members (self=true)"
    if not rule.source_groups or not from_cluster:
        return f"admits a security group other than the cluster's on {rule.ports()}"
    return None


def _data_tier_from_cluster(
    resources: Sequence[StackResource], _settings: PolicySettings
) -> Iterator[tuple[str, str | None]]:
    by_urn = {r.urn: r for r in resources}
    cluster = _descendants(resources, {r.urn for r in by_type(resources, *CLUSTER_TYPES)})
    data_groups = {
        dep
        for store in by_type(resources, RDS_INSTANCE, CACHE_GROUP)
        for dep in store.dependencies
        if dep in by_urn and by_urn[dep].type == SECURITY_GROUP
    }
    for group_urn in sorted(data_groups):
        group = by_urn[group_urn]
        declared = [(group, set(group.dependencies))]
        declared += [
            (rule, set(rule.dependencies) - {group_urn})
            for rule in by_type(resources, INGRESS_RULE, LEGACY_RULE)
            if group_urn in rule.dependencies
        ]
        for owner, deps in declared:
            for rule in ingress_rules(owner.type, owner.props):
                problem = _data_rule_problem(rule, bool(deps & cluster))
                if problem:
                    yield f"Data-tier security group {group.name}: {owner.name} {problem}.", owner.urn


POLICIES = [
    resource_policy(
        "sg-no-public-ingress",
        severity="critical",
        controls=(
            "CIS-AWS 5.2",
            "CIS-AWS 5.3",
            "PCI-DSS 1.3.1",
            "SOC2 CC6.6",
        ),
        types=RULE_TYPES,
        description="Ingress from 0.0.0.0/0 or ::/0 exposes the service to the whole internet; only the load balancer may take HTTP/HTTPS from anywhere.",
        remediation="restrict the source to a security group or a known CIDR; public 80/443 belongs only on the load balancer's security group (name matching loadBalancerSecurityGroupPattern).",
        check=_no_public_ingress,
    ),
    stack_policy(
        "vpc-flow-logs",
        severity="medium",
        controls=(
            "CIS-AWS 3.7",
            "PCI-DSS 10.2.1",
            "SOC2 CC7.2",
        ),
        description="A VPC without flow logs leaves no record of network traffic for incident response.",
        remediation="declare an aws.ec2.FlowLog (trafficType ALL) for the VPC, delivered to an encrypted log group.",
        check=_flow_logs,
    ),
    stack_policy(
        "data-tier-ingress-from-cluster-only",
        severity="high",
        controls=(
            "PCI-DSS 1.3.1",
            "SOC2 CC6.6",
        ),
        description="The database and cache security groups must admit only the EKS cluster's security group.",
        remediation="replace CIDR, prefix-list and self rules with ingress rules whose referencedSecurityGroupId is the cluster's (node or cluster) security group.",
        check=_data_tier_from_cluster,
    ),
]
