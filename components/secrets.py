"""Secrets Manager secrets the service reads at run time, encrypted with the secrets key.

Values a human knows (the LLM API key) are never in the program or the stack config: the secret is
created empty and an operator puts the value out of band (docs/runbook.md, "Bootstrap a stack"):

    aws secretsmanager put-secret-value --secret-id <llmApiKeySecretArn> --secret-string "$KEY"

The Redis AUTH token is generated here (pulumi-random), so it is in the stack state, encrypted by the
stack's secrets provider, and nowhere else. Tenant secrets are created at run time by the tenants CLI
under ``tenant_secret_prefix``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_random as random

# ElastiCache AUTH tokens: 16-128 printable characters, no spaces, '/', '"' or '@'.
AUTH_TOKEN_SPECIALS = "!&#$^<>-"  # noqa: S105 - the allowed alphabet, not a password
AUTH_TOKEN_LENGTH = 64


@dataclass(frozen=True)
class AppSecretsArgs:
    stack: str
    region: str
    kms_key_arn: pulumi.Input[str]
    # Days a deleted secret can still be restored; production keeps the longest window.
    recovery_window_days: int = 30
    # Production: the engine refuses to delete or replace what holds state (`protect`).
    protect: bool = False


class AppSecrets(pulumi.ComponentResource):
    """The Redis AUTH token and the LLM API key secrets, and the namespace tenant secrets live in."""

    redis_auth_token: pulumi.Output[str]
    redis_auth_secret_arn: pulumi.Output[str]
    llm_api_key_secret_arn: pulumi.Output[str]
    tenant_secret_prefix: str
    tenant_secret_arn_pattern: pulumi.Output[str]

    def __init__(self, name: str, args: AppSecretsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ai-agents:secrets:AppSecrets", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        namespace = f"ai-agents/{args.stack}"

        token = random.RandomPassword(
            f"{name}-redis-auth",
            length=AUTH_TOKEN_LENGTH,
            special=True,
            override_special=AUTH_TOKEN_SPECIALS,
            min_lower=4,
            min_upper=4,
            min_numeric=4,
            opts=child,
        )
        # Secret by construction, not only through the provider's schema: every consumer (the cache, the
        # state, the plan) sees it redacted.
        auth_token = pulumi.Output.secret(token.result)
        redis_secret = self._secret(name, "redis-auth", f"{namespace}/redis-auth-", args, "Redis AUTH token")
        aws.secretsmanager.SecretVersion(
            f"{name}-redis-auth",
            secret_id=redis_secret.id,
            secret_string=auth_token,
            opts=child,
        )
        llm_secret = self._secret(
            name, "llm-api-key", f"{namespace}/llm-api-key-", args, "LLM API key (value set by an operator)"
        )

        account = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self)).account_id
        self.redis_auth_token = auth_token
        self.redis_auth_secret_arn = redis_secret.arn
        self.llm_api_key_secret_arn = llm_secret.arn
        self.tenant_secret_prefix = f"{namespace}/tenants/"
        self.tenant_secret_arn_pattern = account.apply(
            lambda acct: f"arn:aws:secretsmanager:{args.region}:{acct}:secret:{self.tenant_secret_prefix}*"
        )
        self.register_outputs(
            {
                "redis_auth_secret_arn": self.redis_auth_secret_arn,
                "llm_api_key_secret_arn": self.llm_api_key_secret_arn,
                "tenant_secret_prefix": self.tenant_secret_prefix,
                "tenant_secret_arn_pattern": self.tenant_secret_arn_pattern,
            }
        )

    def _secret(
        self, name: str, role: str, name_prefix: str, args: AppSecretsArgs, description: str
    ) -> aws.secretsmanager.Secret:
        return aws.secretsmanager.Secret(
            f"{name}-{role}",
            # A deleted secret keeps its name through the recovery window: a fixed name would make the
            # next create of this stack fail for up to 30 days. Secrets Manager adds a unique suffix to
            # the prefix; everything finds the secret by the ARN the stack exports.
            name_prefix=name_prefix,
            description=description,
            kms_key_id=args.kms_key_arn,
            recovery_window_in_days=args.recovery_window_days,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
