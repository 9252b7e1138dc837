"""App secrets under the whole program: KMS-encrypted, the AUTH token generated and secret, no value for
what humans supply, tenant secrets confined to the stack's prefix."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest
from pulumi.runtime.sync_await import _sync_await  # pyright: ignore[reportPrivateUsage]

from components.secrets import AUTH_TOKEN_LENGTH, AUTH_TOKEN_SPECIALS, AppSecrets, AppSecretsArgs
from infra.config import StackConfig, load_stack_file
from stacks.mocks import is_secret
from tests.infra.checks import assert_children_parented
from tests.infra.harness import Captured, resolve, run, run_stack

SECRET = "aws:secretsmanager/secret:Secret"
VERSION = "aws:secretsmanager/secretVersion:SecretVersion"
FORBIDDEN_IN_AUTH_TOKENS = set(' /"@')


@pytest.fixture(scope="module", params=["staging", "production"])
def stack(request: pytest.FixtureRequest) -> tuple[StackConfig, Captured]:
    return load_stack_file(request.param), run_stack(request.param)


def auth_token_alphabet_is_valid(specials: str) -> None:
    """ElastiCache refuses AUTH tokens with spaces, '/', '"' or '@'."""
    assert not FORBIDDEN_IN_AUTH_TOKENS & set(specials), specials


def test_secrets_are_encrypted_with_the_secrets_key_and_named_per_stack(
    stack: tuple[StackConfig, Captured],
) -> None:
    config, captured = stack
    key = captured.outputs("aws:kms/key:Key", f"ai-agents-{config.environment}-secrets")["arn"]
    secrets = captured.of_type(SECRET)
    assert {s.inputs["namePrefix"] for s in secrets} == {
        f"ai-agents/{config.environment}/redis-auth-",
        f"ai-agents/{config.environment}/llm-api-key-",
    }
    assert all(s.inputs["kmsKeyId"] == key for s in secrets)
    assert {s.inputs["recoveryWindowInDays"] for s in secrets} == {30 if config.is_production else 7}


def test_the_auth_token_is_generated_and_stored_as_a_secret(stack: tuple[StackConfig, Captured]) -> None:
    config, captured = stack
    password = captured.inputs("random:index/randomPassword:RandomPassword")
    assert password["length"] >= 32 and password["length"] == AUTH_TOKEN_LENGTH
    auth_token_alphabet_is_valid(password["overrideSpecial"])
    (version,) = captured.of_type(VERSION)
    redis = captured.one(SECRET, f"ai-agents-{config.environment}-redis-auth")
    assert version.inputs["secretId"] == redis.outputs["id"]
    assert is_secret(version.inputs["secretString"]), "the token must stay marked secret"


def test_the_llm_key_has_no_value_in_the_program(stack: tuple[StackConfig, Captured]) -> None:
    config, captured = stack
    llm = captured.one(SECRET, f"ai-agents-{config.environment}-llm-api-key")
    assert all(v.inputs["secretId"] != llm.outputs["id"] for v in captured.of_type(VERSION))


def test_the_cache_gets_the_generated_token(stack: tuple[StackConfig, Captured]) -> None:
    _, captured = stack
    token = captured.outputs("random:index/randomPassword:RandomPassword")["result"]
    group = captured.one("aws:elasticache/replicationGroup:ReplicationGroup")
    assert is_secret(group.inputs["authToken"])
    assert group.inputs["authToken"]["value"] == token


def test_the_alphabet_check_catches_a_forbidden_character() -> None:
    """Mutation: an '@' in the allowed specials must fail the check above."""
    auth_token_alphabet_is_valid(AUTH_TOKEN_SPECIALS)
    with pytest.raises(AssertionError):
        auth_token_alphabet_is_valid(AUTH_TOKEN_SPECIALS + "@")


# --- The component on its own: literal key, its outputs ------------------------------------------------

SECRETS_KEY = "arn:aws:kms:eu-west-1:123456789012:key/secrets"


def _component(stack: str) -> tuple[Captured, dict[str, Any]]:
    outputs: dict[str, Any] = {}

    def program() -> None:
        secrets = AppSecrets(
            "app",
            AppSecretsArgs(stack=stack, region="eu-west-1", kms_key_arn=SECRETS_KEY, recovery_window_days=7),
        )
        outputs.update(
            token=secrets.redis_auth_token,
            pattern=secrets.tenant_secret_arn_pattern,
            prefix=secrets.tenant_secret_prefix,
        )

    return run(program, stack=stack), outputs


def secrets_are_encrypted_and_recoverable(captured: Captured, kms_key_arn: str, days: int) -> None:
    secrets = captured.of_type(SECRET)
    assert secrets, "no secret declared"
    for secret in secrets:
        assert secret.inputs.get("kmsKeyId") == kms_key_arn, (
            f"{secret.name} is not encrypted with the secrets key"
        )
        assert secret.inputs.get("recoveryWindowInDays") == days, f"{secret.name} recovery window"


@pytest.mark.parametrize("stack_name", ["staging", "production"])
def test_tenant_secrets_have_their_own_prefix_outside_the_app_secrets(stack_name: str) -> None:
    """The one wildcard in IAM (tenants/*) must not reach the Redis token or the LLM key."""
    captured, outputs = _component(stack_name)
    secrets_are_encrypted_and_recoverable(captured, SECRETS_KEY, 7)
    assert outputs["prefix"] == f"ai-agents/{stack_name}/tenants/"
    assert resolve(outputs["pattern"]) == (
        f"arn:aws:secretsmanager:eu-west-1:123456789012:secret:ai-agents/{stack_name}/tenants/*"
    )
    for secret in captured.of_type(SECRET):
        assert not secret.outputs["name"].startswith(outputs["prefix"]), secret.outputs["name"]
    assert_children_parented(captured, "ai-agents:secrets:AppSecrets")


def test_the_token_output_is_secret_whatever_the_provider_says() -> None:
    """Secret by construction: the mocks do not apply the random provider's secret outputs."""
    _, outputs = _component("staging")
    token: pulumi.Output[str] = outputs["token"]
    assert _sync_await(token.is_secret())


def test_the_encryption_check_catches_the_aws_managed_key() -> None:
    """Mutation: a secret on the AWS-managed key must fail the check above."""
    captured, _ = _component("staging")
    captured.of_type(SECRET)[0].inputs["kmsKeyId"] = "alias/aws/secretsmanager"
    with pytest.raises(AssertionError, match="not encrypted"):
        secrets_are_encrypted_and_recoverable(captured, SECRETS_KEY, 7)


def test_secret_names_survive_a_recreated_stack(stack: tuple[StackConfig, Captured]) -> None:
    """A deleted secret keeps its name for the recovery window (up to 30 days): a fixed name makes the
    next create of the stack fail. A name prefix lets Secrets Manager add a unique suffix; the tenants'
    namespace is a prefix already."""
    _, captured = stack
    for secret in captured.of_type(SECRET):
        assert "name" not in secret.inputs, secret.name
        assert secret.outputs["name"].startswith(secret.inputs["namePrefix"])
        assert len(secret.outputs["name"]) > len(secret.inputs["namePrefix"])
