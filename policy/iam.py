"""IAM, KMS and Secrets Manager: least-privilege policies, rotated keys, secrets under our key."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from fnmatch import fnmatchcase
from typing import Any

from policy.core import Resource, dicts, is_true, json_document, present, resource_policy, strings

POLICY_TYPES = (
    "aws:iam/policy:Policy",
    "aws:iam/rolePolicy:RolePolicy",
    "aws:iam/userPolicy:UserPolicy",
    "aws:iam/groupPolicy:GroupPolicy",
)
ROLE = "aws:iam/role:Role"
KMS_KEY = "aws:kms/key:Key"
SECRET = "aws:secretsmanager/secret:Secret"  # noqa: S105 - a type token


def allow_statements(r: Resource) -> Iterator[Mapping[str, Any]]:
    """The Allow statements of every policy document a resource carries (inline role policies too)."""
    documents = [r.props.get("policy")] if r.type in POLICY_TYPES else []
    documents += [p.get("policy") for p in dicts(r.props.get("inlinePolicies"))]
    for document in documents:
        for statement in dicts(json_document(document).get("Statement")):
            if statement.get("Effect") == "Allow":
                yield statement


def _is_wildcard_action(action: str) -> bool:
    return action == "*" or action.endswith(":*")


def _no_wildcard_actions(r: Resource) -> Iterator[str]:
    for statement in allow_statements(r):
        sid = statement.get("Sid") or "(no Sid)"
        if present(statement.get("NotAction")):
            yield f"{r.name} statement {sid} allows everything except a list (Allow + NotAction)."
        wildcards = [a for a in strings(statement.get("Action")) if _is_wildcard_action(a)]
        if wildcards:
            yield f"{r.name} statement {sid} allows wildcard action(s) {', '.join(wildcards)}."


def _no_wildcard_resources(r: Resource) -> Iterator[str]:
    exempt = [a.lower() for a in r.settings.iam_wildcard_resource_actions]
    for statement in allow_statements(r):
        sid = statement.get("Sid") or "(no Sid)"
        if present(statement.get("NotResource")):
            yield f"{r.name} statement {sid} applies to every resource except a list (NotResource)."
        if "*" not in strings(statement.get("Resource")):
            continue
        actions = [a.lower() for a in strings(statement.get("Action"))]
        if not actions or not all(any(fnmatchcase(a, e) for e in exempt) for a in actions):
            yield f"{r.name} statement {sid} applies to Resource '*'."


def _key_rotation(r: Resource) -> Iterator[str]:
    spec = str(r.props.get("customerMasterKeySpec") or "SYMMETRIC_DEFAULT")
    if spec == "SYMMETRIC_DEFAULT" and not is_true(r.props.get("enableKeyRotation")):
        yield f"KMS key {r.name} does not rotate its key material (enableKeyRotation)."


def _secret_cmk(r: Resource) -> Iterator[str]:
    key = r.props.get("kmsKeyId")
    if not present(key) or str(key).endswith("alias/aws/secretsmanager"):
        yield f"Secret {r.name} is encrypted with the AWS-managed key instead of the stack's customer-managed key."


POLICIES = [
    resource_policy(
        "iam-no-wildcard-actions",
        severity="critical",
        controls=(
            "CIS-AWS 1.16",
            "PCI-DSS 7.2.2",
            "SOC2 CC6.3",
        ),
        types=[*POLICY_TYPES, ROLE],
        description="An Allow of '*' or 'service:*' (or Allow+NotAction) grants far more than the workload needs.",
        remediation="list the exact actions the workload calls (e.g. secretsmanager:GetSecretValue).",
        check=_no_wildcard_actions,
    ),
    resource_policy(
        "iam-no-wildcard-resources",
        severity="high",
        controls=(
            "PCI-DSS 7.2.2",
            "SOC2 CC6.3",
        ),
        types=[*POLICY_TYPES, ROLE],
        description="An Allow on Resource '*' lets the workload touch every resource of that type in the account.",
        remediation="scope Resource to the ARNs the workload needs; only actions that AWS defines without resources (knob iamWildcardResourceActions) may use '*'.",
        check=_no_wildcard_resources,
    ),
    resource_policy(
        "kms-key-rotation",
        severity="medium",
        controls=(
            "CIS-AWS 3.6",
            "PCI-DSS 3.7.4",
            "SOC2 CC6.1",
        ),
        types=[KMS_KEY],
        description="A KMS key whose material never rotates widens the blast radius of a key compromise.",
        remediation="set enableKeyRotation=true (rotationPeriodInDays optional, default 365).",
        check=_key_rotation,
    ),
    resource_policy(
        "secrets-manager-cmk",
        severity="medium",
        controls=("SOC2 CC6.1",),
        types=[SECRET],
        description="Secrets encrypted with the AWS-managed key cannot be scoped or audited by key policy.",
        remediation="set kmsKeyId to the stack's Secrets Manager customer-managed KMS key ARN.",
        check=_secret_cmk,
    ),
]
