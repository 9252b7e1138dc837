"""IRSA roles for the app's service accounts, each allowed exactly what its pods read.

No wildcard action anywhere and exact resource ARNs, with one deliberate exception: tenant secrets are
created at run time by the tenants CLI, so they are granted by name pattern under the stack's tenant
prefix, one kind per role. The API, which faces the internet, reads webhook secrets only
(``…:secret:ai-agents/<stack>/tenants/webhook/*``); the worker reads ServiceDesk Plus credentials only
(``…/tenants/servicedesk/*``). Neither reads the other's, nor the combined secrets of the layout before
(``…/tenants/<tenant>``): `python -m app tenants split-secrets` moves tenants over before these roles
are deployed (docs/runbook.md, "Split tenant secrets").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pulumi
import pulumi_aws as aws

from components.irsa import Statement, irsa_role, policy_document

ServiceAccount = Literal["api", "worker", "migrations"]
SERVICE_ACCOUNTS: tuple[ServiceAccount, ...] = ("api", "worker", "migrations")
# The non-owner role the app connects as, with RDS IAM authentication (created by the migrations).
APP_DB_USER = "app"
# The tenant secrets each role reads: a folder under the tenant prefix (app/tenants.py writes the same).
TENANT_SECRET_FOLDERS: dict[ServiceAccount, str] = {"api": "webhook/", "worker": "servicedesk/"}


def tenant_secret_pattern(prefix_pattern: str, account: ServiceAccount) -> str:
    """The ARN pattern of one role's tenant secrets, from the prefix's (``…:secret:<prefix>*``)."""
    if not prefix_pattern.endswith("/*"):
        raise ValueError(f"tenant secret ARN pattern must end with '/*': {prefix_pattern}")
    return f"{prefix_pattern.removesuffix('*')}{TENANT_SECRET_FOLDERS[account]}*"


@dataclass(frozen=True)
class AppIdentityArgs:
    namespace: str
    region: str
    oidc_provider_arn: pulumi.Input[str]
    oidc_issuer: pulumi.Input[str]
    secrets_kms_key_arn: pulumi.Input[str]
    redis_auth_secret_arn: pulumi.Input[str]
    llm_api_key_secret_arn: pulumi.Input[str]
    tenant_secret_arn_pattern: pulumi.Input[str]
    database_master_secret_arn: pulumi.Input[str]
    database_resource_id: pulumi.Input[str]


def read_secrets(secret_arns: Sequence[str], kms_key_arn: str, region: str) -> list[Statement]:
    """GetSecretValue on exactly these secrets, and Decrypt with the secrets key only through Secrets Manager."""
    return [
        {
            "Sid": "ReadSecrets",
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": list(secret_arns),
        },
        {
            "Sid": "DecryptThroughSecretsManager",
            "Effect": "Allow",
            "Action": "kms:Decrypt",
            "Resource": kms_key_arn,
            "Condition": {"StringEquals": {"kms:ViaService": f"secretsmanager.{region}.amazonaws.com"}},
        },
    ]


def connect_as_app(region: str, account: str, resource_id: str) -> Statement:
    return {
        "Sid": "ConnectToPostgresAsApp",
        "Effect": "Allow",
        "Action": "rds-db:connect",
        "Resource": f"arn:aws:rds-db:{region}:{account}:dbuser:{resource_id}/{APP_DB_USER}",
    }


def permissions(account: ServiceAccount, values: dict[str, Any], region: str) -> str:
    """The policy document of one service account, from resolved ARNs."""
    key = str(values["kms"])
    if account == "migrations":
        return policy_document(read_secrets([values["master"]], key, region))
    secrets = [values["redis"], tenant_secret_pattern(str(values["tenants"]), account)]
    if account == "worker":
        secrets.insert(1, values["llm"])
    return policy_document(
        [
            *read_secrets(secrets, key, region),
            connect_as_app(region, values["account"], values["resource_id"]),
        ]
    )


class AppIdentity(pulumi.ComponentResource):
    """One role per service account (api, worker, migrations)."""

    role_arns: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: AppIdentityArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ai-agents:identity:AppIdentity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        account = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self)).account_id
        values = pulumi.Output.all(
            account=account,
            kms=args.secrets_kms_key_arn,
            redis=args.redis_auth_secret_arn,
            llm=args.llm_api_key_secret_arn,
            tenants=args.tenant_secret_arn_pattern,
            master=args.database_master_secret_arn,
            resource_id=args.database_resource_id,
        )
        self.role_arns = {}
        for service_account in SERVICE_ACCOUNTS:
            role = irsa_role(
                f"{name}-{service_account}",
                oidc_provider_arn=args.oidc_provider_arn,
                oidc_issuer=args.oidc_issuer,
                namespace=args.namespace,
                service_account=service_account,
                opts=child,
            )
            aws.iam.RolePolicy(
                f"{name}-{service_account}",
                role=role.id,
                policy=values.apply(lambda v, sa=service_account: permissions(sa, v, args.region)),
                opts=child,
            )
            self.role_arns[service_account] = role.arn
        self.register_outputs({f"{sa}_role_arn": arn for sa, arn in self.role_arns.items()})
