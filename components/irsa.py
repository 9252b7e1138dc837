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


def service_trust_policy(service: str) -> str:
    """Trust for a role an AWS service assumes (``ec2.amazonaws.com``, ``vpc-flow-logs.amazonaws.com``…)."""
    return policy_document(
        [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]
    )


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
