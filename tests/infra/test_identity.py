"""IRSA roles under the whole program: each service account may assume only its own role, and each
role reads exactly the secrets its pods use — no wildcard action, exact resources. Tenant secrets are
two kinds under the tenant prefix: the API reads webhook secrets (``webhook/*``) and never a ServiceDesk
Plus credential, the worker reads credentials (``servicedesk/*``) and never a webhook secret."""

from __future__ import annotations

import json
from fnmatch import fnmatchcase
from typing import Any

import pytest

from components.identity import APP_DB_USER, SERVICE_ACCOUNTS, AppIdentity, AppIdentityArgs
from infra.config import StackConfig, load_stack_file
from tests.infra.checks import (
    as_list,
    assert_children_parented,
    assert_exact_permissions,
    assert_irsa_trust,
    statements,
)
from tests.infra.harness import Captured, resolve, run, run_stack


@pytest.fixture(scope="module", params=["staging", "production"])
def stack(request: pytest.FixtureRequest) -> tuple[StackConfig, Captured]:
    return load_stack_file(request.param), run_stack(request.param)


def no_wildcards(policy: dict[str, Any], allowed_patterns: set[str]) -> None:
    """No '*' in any action; a '*' in a resource only for the two tenant secret patterns."""
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
    tenants = f"arn:aws:secretsmanager:{config.aws.region}:123456789012:secret:ai-agents/{config.environment}/tenants/"
    webhook, servicedesk = f"{tenants}webhook/*", f"{tenants}servicedesk/*"
    expected = {"api": [redis, webhook], "worker": [redis, llm, servicedesk], "migrations": [master]}
    for account, secrets in expected.items():
        policy = _policy(config, captured, account)
        no_wildcards(policy, {webhook, servicedesk})
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


def readable(policy: dict[str, Any], arn: str) -> bool:
    """Whether an Allow of secretsmanager:GetSecretValue covers `arn`, matched as IAM matches resources
    ('*' any run of characters, '/' included; '?' one character)."""
    return any(
        fnmatchcase(arn, pattern)
        for statement in policy["Statement"]
        if statement["Effect"] == "Allow" and "secretsmanager:GetSecretValue" in as_list(statement["Action"])
        for pattern in as_list(statement["Resource"])
    )


def tenant_secret_arns(region: str, environment: str, tenant: str = "acme") -> dict[str, str]:
    """A tenant's secrets as Secrets Manager names them (the name plus a random 6-character suffix)."""
    prefix = f"arn:aws:secretsmanager:{region}:123456789012:secret:ai-agents/{environment}/tenants/"
    return {
        "webhook": f"{prefix}webhook/{tenant}-AbCdEf",
        "servicedesk": f"{prefix}servicedesk/{tenant}-GhIjKl",
        # The layout before the split: webhook secrets and credential in one secret per tenant.
        "combined": f"{prefix}{tenant}-MnOpQr",
    }


# Which tenant secrets each role may read: the API, which faces the internet, no credential at all.
TENANT_READS = {
    "api": {"webhook"},
    "worker": {"servicedesk"},
    "migrations": set[str](),
}


def reads_only_its_tenant_secrets(policy: dict[str, Any], account: str, arns: dict[str, str]) -> None:
    readable_kinds = {kind for kind, arn in arns.items() if readable(policy, arn)}
    assert readable_kinds == TENANT_READS[account], (account, readable_kinds)


def test_api_reads_no_credential_and_worker_no_webhook_secret(stack: tuple[StackConfig, Captured]) -> None:
    config, captured = stack
    arns = tenant_secret_arns(config.aws.region, config.environment)
    for account in SERVICE_ACCOUNTS:
        reads_only_its_tenant_secrets(_policy(config, captured, account), account, arns)


def test_the_tenant_read_check_catches_the_whole_prefix() -> None:
    """Mutation: the API role as it was, reading everything under the tenant prefix, must fail."""
    arns = tenant_secret_arns("eu-west-1", "staging")
    prefix = arns["combined"].rsplit("/", 1)[0]
    policy = {
        "Statement": [
            {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": [f"{prefix}/*"]}
        ]
    }
    with pytest.raises(AssertionError):
        reads_only_its_tenant_secrets(policy, "api", arns)


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


# --- The component on its own, with literal ARNs: what it builds from exactly what it is given ---------

REGION = "eu-west-1"
ACCOUNT = "123456789012"  # the mock account (aws.get_caller_identity)
ISSUER = "oidc.eks.eu-west-1.amazonaws.com/id/ABCDEF0123456789"
OIDC_ARN = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{ISSUER}"
SECRETS_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/secrets"
REDIS_SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:ai-agents/staging/redis-auth-AbCdEf"
LLM_SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:ai-agents/staging/llm-api-key-GhIjKl"
TENANTS = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:ai-agents/staging/tenants/*"
WEBHOOK_SECRETS = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:ai-agents/staging/tenants/webhook/*"
CREDENTIALS = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:ai-agents/staging/tenants/servicedesk/*"
MASTER_SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:rds!db-0123-MnOpQr"
DB_RESOURCE_ID = "db-ABCDEFGHIJKLMNOPQRSTUVWXYZ"
DB_USER_ARN = f"arn:aws:rds-db:{REGION}:{ACCOUNT}:dbuser:{DB_RESOURCE_ID}/{APP_DB_USER}"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
EXPECTED_SECRETS = {
    "api": {REDIS_SECRET, WEBHOOK_SECRETS},
    "worker": {REDIS_SECRET, LLM_SECRET, CREDENTIALS},
    "migrations": {MASTER_SECRET},
}


def _component() -> tuple[Captured, dict[str, Any]]:
    role_arns: dict[str, Any] = {}

    def program() -> None:
        identity = AppIdentity(
            "app",
            AppIdentityArgs(
                namespace="ai-agents",
                region=REGION,
                oidc_provider_arn=OIDC_ARN,
                oidc_issuer=ISSUER,
                secrets_kms_key_arn=SECRETS_KEY,
                redis_auth_secret_arn=REDIS_SECRET,
                llm_api_key_secret_arn=LLM_SECRET,
                tenant_secret_arn_pattern=TENANTS,
                database_master_secret_arn=MASTER_SECRET,
                database_resource_id=DB_RESOURCE_ID,
            ),
        )
        role_arns.update(identity.role_arns)

    return run(program), role_arns


@pytest.fixture(scope="module")
def component() -> tuple[Captured, dict[str, Any]]:
    return _component()


def grants_exactly(document: dict[str, Any], account: str) -> None:
    """Its secrets, the secrets key only through Secrets Manager, and (app) rds-db:connect as ``app``."""
    assert_exact_permissions(document, allowed_patterns=(WEBHOOK_SECRETS, CREDENTIALS))
    actions: dict[str, list[dict[str, Any]]] = {}
    for statement in statements(document):
        actions.setdefault(statement["Action"], []).append(statement)
    expected = {"secretsmanager:GetSecretValue", "kms:Decrypt"}
    if account != "migrations":
        expected.add("rds-db:connect")
    assert set(actions) == expected, actions
    [read] = actions["secretsmanager:GetSecretValue"]
    assert set(as_list(read["Resource"])) == EXPECTED_SECRETS[account]
    [decrypt] = actions["kms:Decrypt"]
    assert decrypt["Resource"] == SECRETS_KEY
    assert decrypt["Condition"] == {
        "StringEquals": {"kms:ViaService": f"secretsmanager.{REGION}.amazonaws.com"}
    }
    if account != "migrations":
        [connect] = actions["rds-db:connect"]
        assert connect["Resource"] == DB_USER_ARN


@pytest.mark.parametrize("account", SERVICE_ACCOUNTS)
def test_component_builds_exact_policies_from_its_inputs(
    component: tuple[Captured, dict[str, Any]], account: str
) -> None:
    captured, role_arns = component
    grants_exactly(json.loads(captured.inputs(ROLE_POLICY, f"app-{account}")["policy"]), account)
    role = captured.one("aws:iam/role:Role", f"app-{account}")
    assert role.urn in captured.one(ROLE_POLICY, f"app-{account}").depends_on, "policy on another role"
    assert_irsa_trust(
        captured.inputs("aws:iam/role:Role", f"app-{account}")["assumeRolePolicy"],
        provider_arn=OIDC_ARN,
        issuer=ISSUER,
        namespace="ai-agents",
        account=account,
    )
    assert resolve(role_arns[account]) == role.outputs["arn"], "role_arns maps each account to its own role"


@pytest.mark.parametrize("account", SERVICE_ACCOUNTS)
def test_component_gives_each_role_only_its_kind_of_tenant_secret(
    component: tuple[Captured, dict[str, Any]], account: str
) -> None:
    captured, _ = component
    policy = json.loads(captured.inputs(ROLE_POLICY, f"app-{account}")["policy"])
    reads_only_its_tenant_secrets(policy, account, tenant_secret_arns(REGION, "staging"))


def test_component_children_are_parented(component: tuple[Captured, dict[str, Any]]) -> None:
    captured, role_arns = component
    assert sorted(role_arns) == sorted(SERVICE_ACCOUNTS)
    assert_children_parented(captured, "ai-agents:identity:AppIdentity")


def test_the_exact_grant_check_catches_widened_permissions_and_trust(
    component: tuple[Captured, dict[str, Any]],
) -> None:
    """Mutations: a wildcard action, Resource "*", the worker's LLM key on the api, a StringLike trust."""
    captured, _ = component
    api = json.loads(captured.inputs(ROLE_POLICY, "app-api")["policy"])
    grants_exactly(api, "api")
    read = next(s for s in statements(api) if s["Action"] == "secretsmanager:GetSecretValue")
    others = [s for s in statements(api) if s is not read]
    for widened in (
        {**read, "Action": "secretsmanager:*"},
        {**read, "Resource": "*"},
        {**read, "Resource": [*read["Resource"], LLM_SECRET]},
        {**read, "Resource": [*read["Resource"], CREDENTIALS]},
        {**read, "Resource": [REDIS_SECRET, TENANTS]},
        {**read, "Resource": [*read["Resource"], f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:*"]},
    ):
        with pytest.raises(AssertionError):
            grants_exactly({**api, "Statement": [widened, *others]}, "api")
    trust = json.loads(captured.inputs("aws:iam/role:Role", "app-api")["assumeRolePolicy"])
    trust["Statement"][0]["Condition"] = {"StringLike": trust["Statement"][0]["Condition"]["StringEquals"]}
    with pytest.raises(AssertionError):
        assert_irsa_trust(
            json.dumps(trust), provider_arn=OIDC_ARN, issuer=ISSUER, namespace="ai-agents", account="api"
        )
