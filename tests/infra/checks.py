"""Checks shared by component tests: each raises AssertionError naming what is wrong.

Kept as plain functions (not tests) so a test can also feed them a deliberately broken capture and
show that they fail.
"""

from __future__ import annotations

import json
from typing import Any

from tests.infra.harness import Captured

SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS_RULE = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"


def assert_only_reachable_from(captured: Captured, group_ids: list[str], *, source: str, port: int) -> None:
    """The store sits in exactly one security group, whose only ingress is TCP ``port`` from ``source``.

    ``group_ids`` are the security group ids the store resource was given (``vpcSecurityGroupIds`` /
    ``securityGroupIds``); rules are matched to the group through their ``securityGroupId`` input.
    """
    assert len(group_ids) == 1, f"expected the store in exactly one security group, got {group_ids}"
    for group in captured.of_type(SECURITY_GROUP):
        inputs = captured.inputs(SECURITY_GROUP, group.name)
        assert not inputs.get("ingress"), f"{group.name} declares inline ingress {inputs['ingress']}"
    rules = [
        captured.inputs(INGRESS_RULE, rule.name)
        for rule in captured.of_type(INGRESS_RULE)
        if captured.inputs(INGRESS_RULE, rule.name)["securityGroupId"] == group_ids[0]
    ]
    assert len(rules) == 1, f"expected exactly one ingress rule on the store's group, got {rules}"
    rule = rules[0]
    assert rule.get("referencedSecurityGroupId") == source, rule
    assert rule["ipProtocol"] == "tcp", rule
    assert rule.get("fromPort") == port and rule.get("toPort") == port, rule
    for widening in ("cidrIpv4", "cidrIpv6", "prefixListId"):
        assert not rule.get(widening), f"the rule also admits {widening}={rule[widening]}"
    assert not captured.of_type(EGRESS_RULE), "a data store needs no egress rule"


def assert_children_parented(captured: Captured, component_type: str) -> None:
    component = captured.one(component_type)
    children = [r for r in captured.registrations if r is not component]
    assert children, "the component declared no children"
    orphans = [r.name for r in children if r.parent != component.urn]
    assert not orphans, f"not parented to the component: {orphans}"


def statements(document: str | dict[str, Any]) -> list[dict[str, Any]]:
    """The statements of an IAM policy document (JSON text or parsed), always as a list."""
    parsed: dict[str, Any] = json.loads(document) if isinstance(document, str) else document
    found = parsed["Statement"]
    return found if isinstance(found, list) else [found]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def assert_exact_permissions(
    document: str | dict[str, Any], *, allowed_patterns: tuple[str, ...] = ()
) -> None:
    """No wildcard action, no ``Resource: "*"``; a resource may contain ``*`` only if it is listed in
    ``allowed_patterns`` (each pattern ending in ``/*``, so it stays scoped to a name prefix)."""
    for statement in statements(document):
        assert statement["Effect"] == "Allow", statement
        assert "NotAction" not in statement and "NotResource" not in statement, statement
        for action in as_list(statement["Action"]):
            assert "*" not in action, f"wildcard action {action!r} in {statement}"
        for resource in as_list(statement["Resource"]):
            if "*" in resource:
                assert resource in allowed_patterns, f"wildcard resource {resource!r} in {statement}"
                assert resource.endswith("/*") and resource.count("*") == 1, resource


def assert_irsa_trust(document: str, *, provider_arn: str, issuer: str, namespace: str, account: str) -> None:
    """Only ``namespace:account`` of the cluster behind ``provider_arn`` may assume the role, for STS."""
    [statement] = statements(document)
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == {"Federated": provider_arn}
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    # StringEquals, never StringLike: a pattern would let other service accounts assume the role.
    assert statement["Condition"] == {
        "StringEquals": {
            f"{issuer}:sub": f"system:serviceaccount:{namespace}:{account}",
            f"{issuer}:aud": "sts.amazonaws.com",
        }
    }
