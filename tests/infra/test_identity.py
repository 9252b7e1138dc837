"""IRSA roles under the whole program: each service account may assume only its own role, and each
role reads exactly the secrets its pods use — no wildcard action, exact resources."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.identity import APP_DB_USER, SERVICE_ACCOUNTS
from infra.config import StackConfig, load_stack_file
from tests.infra.harness import Captured, run_stack


@pytest.fixture(scope="module", params=["staging", "production"])
def stack(request: pytest.FixtureRequest) -> tuple[StackConfig, Captured]:
    return load_stack_file(request.param), run_stack(request.param)


def no_wildcards(policy: dict[str, Any], allowed_patterns: set[str]) -> None:
    """No '*' in any action; a '*' in a resource only for the tenant secret prefix."""
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all("*" not in action for action in actions), statement
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        assert all("*" not in r or r in allowed_patterns for r in resources), statement


def _policy(config: StackConfig, captured: Captured, account: str) -> dict[str, Any]:
    return json.loads(
        captured.inputs("aws:iam/rolePolicy:RolePolicy", f"ai-agents-{config.environment}-{account}")[
            "policy"
        ]
    )


def _secret_arn(config: StackConfig, captured: Captured, role: str) -> str:
    return str(
        captured.outputs("aws:secretsmanager/secret:Secret", f"ai-agents-{config.environment}-{role}")["arn"]
    )


@pytest.mark.parametrize("account", SERVICE_ACCOUNTS)
def test_only_its_own_service_account_may_assume_the_role(
    stack: tuple[StackConfig, Captured], account: str
) -> None:
    config, captured = stack
    eks = captured.outputs("eks:index:Cluster")
    role = captured.inputs("aws:iam/role:Role", f"ai-agents-{config.environment}-{account}")
    (statement,) = json.loads(role["assumeRolePolicy"])["Statement"]
    assert statement["Principal"] == {"Federated": eks["oidcProviderArn"]}
    assert statement["Condition"]["StringEquals"] == {
        f"{eks['oidcIssuer']}:sub": f"system:serviceaccount:{config.app.namespace}:{account}",
        f"{eks['oidcIssuer']}:aud": "sts.amazonaws.com",
    }


def test_each_role_reads_exactly_its_secrets(stack: tuple[StackConfig, Captured]) -> None:
    config, captured = stack
    redis, llm = _secret_arn(config, captured, "redis-auth"), _secret_arn(config, captured, "llm-api-key")
    master = captured.outputs("aws:rds/instance:Instance")["masterUserSecrets"][0]["secretArn"]
    tenants = f"arn:aws:secretsmanager:{config.aws.region}:123456789012:secret:ai-agents/{config.environment}/tenants/*"
    expected = {"api": [redis, tenants], "worker": [redis, llm, tenants], "migrations": [master]}
    for account, secrets in expected.items():
        policy = _policy(config, captured, account)
        no_wildcards(policy, {tenants})
        reads = next(s for s in policy["Statement"] if s["Action"] == "secretsmanager:GetSecretValue")
        assert reads["Resource"] == secrets, account
        decrypt = next(s for s in policy["Statement"] if s["Action"] == "kms:Decrypt")
        assert (
            decrypt["Resource"]
            == captured.outputs("aws:kms/key:Key", f"ai-agents-{config.environment}-secrets")["arn"]
        )
        assert decrypt["Condition"] == {
            "StringEquals": {"kms:ViaService": f"secretsmanager.{config.aws.region}.amazonaws.com"}
        }


def test_api_and_worker_connect_to_postgres_as_the_app_user(stack: tuple[StackConfig, Captured]) -> None:
    config, captured = stack
    resource_id = captured.outputs("aws:rds/instance:Instance")["resourceId"]
    for account in ("api", "worker"):
        (connect,) = [
            s for s in _policy(config, captured, account)["Statement"] if s["Action"] == "rds-db:connect"
        ]
        assert connect["Resource"] == (
            f"arn:aws:rds-db:{config.aws.region}:123456789012:dbuser:{resource_id}/{APP_DB_USER}"
        )
    assert all(s["Action"] != "rds-db:connect" for s in _policy(config, captured, "migrations")["Statement"])


def test_service_accounts_are_annotated_with_their_roles(stack: tuple[StackConfig, Captured]) -> None:
    config, captured = stack
    for account in SERVICE_ACCOUNTS:
        service_account = next(
            r
            for r in captured.of_type("kubernetes:core/v1:ServiceAccount")
            if r.inputs["metadata"]["name"] == account
        )
        role = captured.outputs("aws:iam/role:Role", f"ai-agents-{config.environment}-{account}")
        assert service_account.inputs["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == role["arn"]


def test_the_wildcard_check_catches_a_star() -> None:
    """Mutation: a '*' action or an unexpected '*' resource must fail the check."""
    with pytest.raises(AssertionError):
        no_wildcards({"Statement": [{"Action": "secretsmanager:*", "Resource": "arn:x"}]}, set())
    with pytest.raises(AssertionError):
        no_wildcards({"Statement": [{"Action": "secretsmanager:GetSecretValue", "Resource": "*"}]}, set())
