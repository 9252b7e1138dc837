"""App secrets under the whole program: KMS-encrypted, the AUTH token generated and secret, no value for
what humans supply, tenant secrets confined to the stack's prefix."""

from __future__ import annotations

import pytest

from components.secrets import AUTH_TOKEN_LENGTH, AUTH_TOKEN_SPECIALS
from infra.config import StackConfig, load_stack_file
from stacks.mocks import is_secret
from tests.infra.harness import Captured, run_stack

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
    assert {s.inputs["name"] for s in secrets} == {
        f"ai-agents/{config.environment}/redis-auth",
        f"ai-agents/{config.environment}/llm-api-key",
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
