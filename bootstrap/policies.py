"""Every trust and permission document the bootstrap creates, as plain functions of names.

Who may become which role is decided here, so these functions are what the tests read:

- ``deploy-<stack>``: only a job in the GitHub environment ``<stack>`` of this repository
  (``sub = repo:<owner>/<repo>:environment:<stack>``); the environment's deployment-branch rule admits
  only the default branch (and, for production, release tags). It alone may use its stack's key and
  write its stack's state.
- ``drift-<stack>``: only a job in the environment ``drift-<stack>`` (default branch only): reads
  everything, decrypts its stack's state, writes nothing but its stack's lock.
- ``preview``: only a ``pull_request`` job of this repository (a job with no environment): reads, no key
  of any stack, no state, no secret values.

Subjects are compared with ``StringEquals``: exact strings, where ``*`` is no wildcard.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from components.irsa import Statement

GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
GITHUB_OIDC_URL = f"https://{GITHUB_OIDC_HOST}"
AUDIENCE = "sts.amazonaws.com"
PULUMI_PROJECT = "ai-agents-platform"  # the platform's project: its state lives under this name

Document = dict[str, Any]


def document(statements: Sequence[Statement]) -> Document:
    return {"Version": "2012-10-17", "Statement": [dict(s) for s in statements]}


# --- names -----------------------------------------------------------------------------------------


def role_name(prefix: str, purpose: str, stack: str | None = None) -> str:
    return f"{prefix}-{purpose}-{stack}" if stack else f"{prefix}-{purpose}"


def role_arn(account: str, name: str) -> str:
    return f"arn:aws:iam::{account}:role/{name}"


def key_alias(prefix: str, stack: str) -> str:
    return f"alias/{prefix}-{stack}-pulumi-secrets"


def secrets_provider(prefix: str, stack: str, region: str) -> str:
    """What ``pulumi stack init --secrets-provider`` takes for the stack."""
    return f"awskms://{key_alias(prefix, stack)}?region={region}"


def state_bucket_name(prefix: str, account: str) -> str:
    return f"{prefix}-pulumi-state-{account}"


def backend_url(bucket: str, region: str) -> str:
    return f"s3://{bucket}?region={region}"


def drift_environment(stack: str) -> str:
    return f"drift-{stack}"


# --- who may assume the roles ----------------------------------------------------------------------


def deploy_subject(repository: str, stack: str) -> str:
    return f"repo:{repository}:environment:{stack}"


def drift_subject(repository: str, stack: str) -> str:
    return f"repo:{repository}:environment:{drift_environment(stack)}"


def preview_subject(repository: str) -> str:
    return f"repo:{repository}:pull_request"


def github_trust_policy(provider_arn: str, subject: str) -> Document:
    """Only a GitHub Actions token for this audience and exactly this subject (no wildcard, no ``Like``)."""
    if "*" in subject or "?" in subject:
        raise ValueError(f"an OIDC subject is an exact string: {subject!r}")
    return document(
        [
            {
                "Sid": "GithubActionsOidc",
                "Effect": "Allow",
                "Principal": {"Federated": provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{GITHUB_OIDC_HOST}:aud": AUDIENCE,
                        f"{GITHUB_OIDC_HOST}:sub": subject,
                    }
                },
            }
        ]
    )


# --- the secrets keys ------------------------------------------------------------------------------

# Administration without use: no Encrypt/Decrypt/GenerateDataKey, and no CreateGrant (a grant would be a
# way to use the key).
KEY_ADMIN_ACTIONS = [
    "kms:CancelKeyDeletion",
    "kms:CreateAlias",
    "kms:DeleteAlias",
    "kms:DescribeKey",
    "kms:DisableKey",
    "kms:DisableKeyRotation",
    "kms:EnableKey",
    "kms:EnableKeyRotation",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListAliases",
    "kms:ListGrants",
    "kms:ListKeyPolicies",
    "kms:ListResourceTags",
    "kms:PutKeyPolicy",
    "kms:RevokeGrant",
    "kms:RotateKeyOnDemand",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateAlias",
    "kms:UpdateKeyDescription",
]
# Pulumi's awskms provider: Encrypt makes a stack's data key (stack init), Decrypt opens it (every run).
KEY_USE_ACTIONS = ["kms:DescribeKey", "kms:Encrypt", "kms:Decrypt"]
KEY_DECRYPT_ACTIONS = ["kms:DescribeKey", "kms:Decrypt"]
# What only the named roles may do with the key, whatever a grant or a later policy edit says.
KEY_GUARDED_ACTIONS = [
    "kms:Decrypt",
    "kms:Encrypt",
    "kms:GenerateDataKey*",
    "kms:ReEncrypt*",
    "kms:CreateGrant",
]


def secrets_key_policy(
    *,
    administrators: Sequence[str],
    deploy_role: str,
    drift_role: str,
    break_glass: Sequence[str] = (),
) -> Document:
    """One stack's secrets key: its deploy role (and break-glass roles) use it, its drift role decrypts,
    administrators administer; the account root gets nothing, so no IAM policy (AdministratorAccess of
    another stack's deploy role included) can reach it."""
    users = [deploy_role, *break_glass]
    statements: list[Statement] = [
        {
            "Sid": "AdministratorsAdministerNotUse",
            "Effect": "Allow",
            "Principal": {"AWS": list(administrators)},
            "Action": KEY_ADMIN_ACTIONS,
            "Resource": "*",
        },
        {
            "Sid": "DeployRoleUsesTheKey",
            "Effect": "Allow",
            "Principal": {"AWS": users},
            "Action": KEY_USE_ACTIONS,
            "Resource": "*",
        },
        {
            "Sid": "DriftRoleDecrypts",
            "Effect": "Allow",
            "Principal": {"AWS": drift_role},
            "Action": KEY_DECRYPT_ACTIONS,
            "Resource": "*",
        },
        {
            "Sid": "NobodyElseUsesTheKey",
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Action": KEY_GUARDED_ACTIONS,
            "Resource": "*",
            "Condition": {"ArnNotEquals": {"aws:PrincipalArn": [*users, drift_role]}},
        },
        {
            "Sid": "DriftRoleOnlyDecrypts",
            "Effect": "Deny",
            "Principal": {"AWS": drift_role},
            "NotAction": KEY_DECRYPT_ACTIONS,
            "Resource": "*",
        },
    ]
    return document(statements)


# --- the state bucket --------------------------------------------------------------------------------


def state_object_arns(bucket: str, stack: str) -> list[str]:
    """A stack's objects in Pulumi's DIY backend layout: checkpoint, its backups and history."""
    base = f"arn:aws:s3:::{bucket}/.pulumi"
    return [
        f"{base}/stacks/{PULUMI_PROJECT}/{stack}.json*",
        f"{base}/backups/{PULUMI_PROJECT}/{stack}/*",
        f"{base}/history/{PULUMI_PROJECT}/{stack}/*",
    ]


def lock_object_arn(bucket: str, stack: str) -> str:
    return f"arn:aws:s3:::{bucket}/.pulumi/locks/*/{PULUMI_PROJECT}/{stack}/*"


def state_bucket_policy(
    bucket: str,
    *,
    deploy_roles: dict[str, str],
    drift_roles: dict[str, str],
    administrators: Sequence[str],
    break_glass: Sequence[str] = (),
) -> Document:
    """TLS only; versions are kept (only administrators change versioning or lifecycle, nobody deletes a
    version but break-glass roles); each stack's state is written only by its deploy role, its lock also
    by its drift role."""
    writes = ["s3:PutObject", "s3:DeleteObject"]
    statements: list[Statement] = [
        {
            "Sid": "TlsOnly",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
        {
            "Sid": "HistoryIsKept",
            "Effect": "Deny",
            "Principal": "*",
            "Action": ["s3:DeleteObjectVersion", "s3:PutLifecycleConfiguration", "s3:PutBucketVersioning"],
            "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            "Condition": {"ArnNotEquals": {"aws:PrincipalArn": [*administrators, *break_glass]}},
        },
    ]
    for stack in sorted(deploy_roles):
        writers = [deploy_roles[stack], *break_glass]
        statements += [
            {
                "Sid": f"OnlyDeploy{stack.capitalize()}WritesItsState",
                "Effect": "Deny",
                "Principal": "*",
                "Action": writes,
                "Resource": state_object_arns(bucket, stack),
                "Condition": {"ArnNotEquals": {"aws:PrincipalArn": writers}},
            },
            {
                "Sid": f"OnlyDeployAndDrift{stack.capitalize()}LockIt",
                "Effect": "Deny",
                "Principal": "*",
                "Action": writes,
                "Resource": lock_object_arn(bucket, stack),
                "Condition": {"ArnNotEquals": {"aws:PrincipalArn": [*writers, drift_roles[stack]]}},
            },
        ]
    return document(statements)


# --- what the roles may do -------------------------------------------------------------------------

IAM_WRITE_ACTIONS = [
    "iam:AttachRolePolicy",
    "iam:DeleteRole",
    "iam:DeleteRolePermissionsBoundary",
    "iam:DeleteRolePolicy",
    "iam:DetachRolePolicy",
    "iam:PutRolePermissionsBoundary",
    "iam:PutRolePolicy",
    "iam:TagRole",
    "iam:UntagRole",
    "iam:UpdateAssumeRolePolicy",
    "iam:UpdateRole",
    "iam:UpdateRoleDescription",
]
OIDC_WRITE_ACTIONS = [
    "iam:AddClientIDToOpenIDConnectProvider",
    "iam:DeleteOpenIDConnectProvider",
    "iam:RemoveClientIDFromOpenIDConnectProvider",
    "iam:TagOpenIDConnectProvider",
    "iam:UntagOpenIDConnectProvider",
    "iam:UpdateOpenIDConnectProviderThumbprint",
]
BUCKET_CONFIG_ACTIONS = [
    "s3:DeleteBucket",
    "s3:DeleteBucketPolicy",
    "s3:PutBucketAcl",
    "s3:PutBucketOwnershipControls",
    "s3:PutBucketPolicy",
    "s3:PutBucketPublicAccessBlock",
    "s3:PutBucketVersioning",
    "s3:PutEncryptionConfiguration",
    "s3:PutLifecycleConfiguration",
]


def deploy_guard_policy(*, protected_roles: Sequence[str], oidc_provider: str, bucket: str) -> Document:
    """What a deploy role's managed policy would otherwise allow and must not: rewriting the roles that
    guard CI (its own trust included), the OIDC provider, or the state bucket's settings."""
    return document(
        [
            {
                "Sid": "LeaveCiRolesAlone",
                "Effect": "Deny",
                "Action": IAM_WRITE_ACTIONS,
                "Resource": list(protected_roles),
            },
            {
                "Sid": "LeaveTheOidcProviderAlone",
                "Effect": "Deny",
                "Action": OIDC_WRITE_ACTIONS,
                "Resource": oidc_provider,
            },
            {
                "Sid": "LeaveTheStateBucketAlone",
                "Effect": "Deny",
                "Action": BUCKET_CONFIG_ACTIONS,
                "Resource": f"arn:aws:s3:::{bucket}",
            },
        ]
    )


def drift_lock_policy(bucket: str, stack: str) -> Document:
    """ReadOnlyAccess plus the one write ``refresh --preview-only`` makes: its stack's lock file."""
    return document(
        [
            {
                "Sid": "LockItsStack",
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:DeleteObject"],
                "Resource": lock_object_arn(bucket, stack),
            }
        ]
    )


# Reads that ReadOnlyAccess allows and a pull request's code must not make.
PREVIEW_DENIED_ACTIONS = [
    "kms:Decrypt",
    "kms:Encrypt",
    "kms:GenerateDataKey*",
    "kms:ReEncrypt*",
    "kms:CreateGrant",
    "secretsmanager:GetSecretValue",
    "ssm:GetParameter",
    "ssm:GetParameters",
    "ssm:GetParametersByPath",
    "logs:FilterLogEvents",
    "logs:GetLogEvents",
    "logs:StartQuery",
    "sts:AssumeRole",
]


def preview_guard_policy(bucket: str) -> Document:
    """No key, no secret value, no log line, no role chaining, and nothing of the state bucket."""
    return document(
        [
            {
                "Sid": "NoSecretsNoKeysNoLogs",
                "Effect": "Deny",
                "Action": PREVIEW_DENIED_ACTIONS,
                "Resource": "*",
            },
            {
                "Sid": "NoState",
                "Effect": "Deny",
                "Action": "s3:*",
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            },
        ]
    )
