"""The pack's policy list: the one list both the CrossGuard entry point (``__main__.py``) and the
offline checker (``checker.py``) use. Importing this module never starts the gRPC server."""

from __future__ import annotations

from pulumi_policy import EnforcementLevel, Policy

from policy import (
    budget,
    ecr,
    eks,
    elasticache,
    gateway,
    iam,
    keda,
    monitoring,
    network,
    rds,
    stack,
    workloads,
)
from policy.core import metadata
from policy.settings import PolicySettings

PACK_NAME = "ai-agents-platform-security"

#: Every policy, grouped by service module (docs/policy.md lists them in this order).
MODULES = {
    "RDS": rds.POLICIES,
    "ElastiCache": elasticache.POLICIES,
    "EKS": eks.POLICIES,
    "ECR": ecr.POLICIES,
    "Network": network.POLICIES,
    "IAM / KMS / Secrets Manager": iam.POLICIES,
    "Kubernetes": workloads.POLICIES,
    "Gateway API (edge)": gateway.POLICIES,
    "KEDA (autoscaling)": keda.POLICIES,
    "Monitoring": monitoring.POLICIES,
    "Stack": stack.POLICIES,
    "Cost": budget.POLICIES,
}
POLICIES: list[Policy] = [policy for policies in MODULES.values() for policy in policies]


def default_level(policy: Policy) -> str:
    return (policy.enforcement_level or EnforcementLevel.MANDATORY).value


def enforcement_level(policy: Policy, settings: PolicySettings) -> EnforcementLevel:
    """The policy's level on the settings' stack (knobs ``policies``, ``severityLevels``,
    ``enforcementLevel``)."""
    severity = metadata(policy.name).severity
    return EnforcementLevel(settings.level_for(policy.name, default_level(policy), severity))


def initial_config(settings: PolicySettings) -> dict[str, EnforcementLevel | dict[str, object]]:
    """Per-policy enforcement levels for the engine, resolved for the stack being previewed."""
    return {policy.name: enforcement_level(policy, settings) for policy in POLICIES}
