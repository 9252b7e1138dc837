"""IAM trust and policy documents shared by the components: IRSA roles for Kubernetes service accounts,
and roles that AWS services assume.

Not a component: a role belongs to the component whose pods (or service) assume it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_aws as aws

Statement = Mapping[str, Any]


def irsa_trust_policy(oidc_provider_arn: str, oidc_issuer: str, namespace: str, service_account: str) -> str:
    """Only this service account of this cluster may assume the role (sub and aud both pinned)."""
    issuer = oidc_issuer.removeprefix("https://")
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": oidc_provider_arn},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {
                        "StringEquals": {
                            f"{issuer}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                            f"{issuer}:aud": "sts.amazonaws.com",
                        }
                    },
                }
            ],
        }
    )


def policy_document(statements: Sequence[Statement]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def service_trust_policy(service: str, source_account: str | None = None) -> str:
    """Trust for a role an AWS service assumes (``ec2.amazonaws.com``, ``vpc-flow-logs.amazonaws.com``…).

    With ``source_account``, the service may assume the role only on behalf of that account's resources
    (``aws:SourceAccount``): the confused-deputy guard for services acting for many customers.
    """
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": "sts:AssumeRole",
    }
    if source_account is not None:
        statement["Condition"] = {"StringEquals": {"aws:SourceAccount": source_account}}
    return policy_document([statement])


def account_service_trust_policy(service: str, parent: pulumi.Resource) -> pulumi.Output[str]:
    """``service_trust_policy`` restricted to the deploying account (looked up, never configured)."""
    account = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=parent)).account_id
    return account.apply(lambda account_id: service_trust_policy(service, account_id))


def irsa_role(
    name: str,
    *,
    oidc_provider_arn: pulumi.Input[str],
    oidc_issuer: pulumi.Input[str],
    namespace: str,
    service_account: str,
    opts: pulumi.ResourceOptions,
) -> aws.iam.Role:
    trust = pulumi.Output.all(oidc_provider_arn, oidc_issuer).apply(
        lambda v: irsa_trust_policy(str(v[0]), str(v[1]), namespace, service_account)
    )
    return aws.iam.Role(name, assume_role_policy=trust, opts=opts)
