"""Each role under the IAM policy the stack gives it (components/identity.py), enforced on reads as AWS
would: the API authenticates without ever reading a ServiceDesk Plus credential, the worker reads the
credential without ever reading a webhook secret."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from fnmatch import fnmatchcase
from typing import Any

import pytest
from botocore.exceptions import ClientError

from app.signing import sign
from components.identity import ServiceAccount, permissions
from harness.moto_server import REGION, MotoServer
from harness.stack import Stack

ACCOUNT = "123456789012"  # moto's account


def _arn_readable(policy: dict[str, Any], arn: str) -> bool:
    return any(
        fnmatchcase(arn, pattern)
        for statement in policy["Statement"]
        if statement["Action"] == "secretsmanager:GetSecretValue"
        for pattern in statement["Resource"]
    )


class _AsRole:
    """A Secrets Manager client that refuses GetSecretValue outside the role's policy (AccessDenied)."""

    def __init__(self, client: Any, policy: dict[str, Any]) -> None:
        self._client = client
        self._policy = policy
        self.read: list[str] = []

    def get_secret_value(self, SecretId: str) -> Any:  # noqa: N803 - boto3's keyword
        arn = self._client.describe_secret(SecretId=SecretId)["ARN"]
        if not _arn_readable(self._policy, arn):
            raise ClientError(
                {"Error": {"Code": "AccessDeniedException", "Message": f"not allowed: {arn}"}},
                "GetSecretValue",
            )
        self.read.append(SecretId)
        return self._client.get_secret_value(SecretId=SecretId)


def _role_policy(account: ServiceAccount, secret_prefix: str) -> dict[str, Any]:
    arn = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:"
    values = {
        "account": ACCOUNT,
        "kms": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/secrets",
        "redis": f"{arn}redis-AbCdEf",
        "llm": f"{arn}llm-AbCdEf",
        "tenants": f"{arn}{secret_prefix}*",
        "master": f"{arn}master-AbCdEf",
        "resource_id": "db-ABC",
    }
    return json.loads(permissions(account, values, REGION))


@pytest.fixture
def as_role(stack: Stack, moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from app.db.engine import Database, create_app_engine
    from app.secret_store import SecretStore
    from app.settings import Settings

    for key, value in stack.env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()  # type: ignore[call-arg]
    db = Database(create_app_engine(settings))

    def build(account: ServiceAccount) -> tuple[Any, SecretStore, _AsRole]:
        client = _AsRole(moto.secretsmanager(), _role_policy(account, stack.secret_prefix))
        return db, SecretStore(client, ttl_seconds=300), client

    yield build
    db.dispose()


def test_the_api_authenticates_under_its_role_and_cannot_read_a_credential(
    stack: Stack, as_role: Any
) -> None:
    from app.api.tenant_auth import TenantAuthenticator
    from app.secret_store import SecretUnavailableError
    from app.tenants import TenantDirectory

    tenant = stack.add_tenant(f"tenant-iam-{uuid.uuid4().hex[:6]}")
    db, store, client = as_role("api")
    directory = TenantDirectory(db, store)
    auth = TenantAuthenticator(directory, store, secret_prefix=stack.secret_prefix, connect_kwargs=dict)
    message = b'{"ticket_id": "1"}'
    # A loop of its own, not asyncio.run: that leaves the thread without a current loop, which the
    # Pulumi mocks of the infrastructure tests (same pytest process) need.
    loop = asyncio.new_event_loop()
    try:
        info = loop.run_until_complete(
            auth.authenticate(tenant.id, sign(tenant.webhook_secret, message), message)
        )
    finally:
        loop.close()
    assert info.id == tenant.id
    assert client.read == [f"{stack.secret_prefix}webhook/{tenant.id}"]
    with pytest.raises(SecretUnavailableError):
        directory.servicedesk_credential(info)


def test_the_worker_reads_the_credential_under_its_role_and_cannot_read_webhook_secrets(
    stack: Stack, as_role: Any
) -> None:
    from app.secret_store import SecretUnavailableError
    from app.tenants import TenantDirectory

    tenant = stack.add_tenant(f"tenant-iam-{uuid.uuid4().hex[:6]}")
    db, store, client = as_role("worker")
    directory = TenantDirectory(db, store)
    info = directory.get(tenant.id)
    assert info is not None
    assert directory.servicedesk_credential(info) == tenant.credential
    assert client.read == [f"{stack.secret_prefix}servicedesk/{tenant.id}"]
    with pytest.raises(SecretUnavailableError):
        directory.webhook_secrets(info)


def test_the_roles_grant_the_folders_the_cli_writes() -> None:
    from app.tenants import CREDENTIAL_FOLDER, WEBHOOK_FOLDER
    from components.identity import TENANT_SECRET_FOLDERS

    assert TENANT_SECRET_FOLDERS == {"api": WEBHOOK_FOLDER, "worker": CREDENTIAL_FOLDER}
