"""One tenant authentication for every route (app/api/tenant_auth.py), and its revocation bound.

The suite's API caches secrets for 300 s, as production does: whatever is refused or accepted here
within REVOCATION_BOUND_SECONDS is the announcement's work (app/tenant_events.py), not a TTL expiring.
Each check waits up to the bound, polling, and fails past it: the bound is what is tested.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from app.api.tenant_auth import REVOCATION_BOUND_SECONDS, TenantAuthenticator, Unauthorized
from app.db.engine import Database, app_connect_kwargs, create_app_engine
from app.secret_store import SecretStore
from app.settings import Settings
from app.signing import sign
from app.tenants import TenantDirectory
from harness.net import free_port
from harness.processes import run_cli
from harness.stack import Stack, TenantFixture

WEBHOOK = "/webhook/servicedesk"


def _deliver(stack: Stack, client: httpx.Client, tenant: TenantFixture, secret: str) -> int:
    body = stack.payload(f"T{uuid.uuid4().hex[:10]}")
    headers = {**stack.webhook_headers(tenant, body), "X-ServiceDesk-Signature": sign(secret, body)}
    return client.post(WEBHOOK, content=body, headers=headers).status_code


def _within_bound(check: Callable[[], bool]) -> float:
    """Seconds until `check` held; fails when it did not within the revocation bound."""
    started = time.monotonic()
    while True:
        if check():
            return time.monotonic() - started
        elapsed = time.monotonic() - started
        assert elapsed <= REVOCATION_BOUND_SECONDS, f"not seen within {REVOCATION_BOUND_SECONDS} s"
        time.sleep(0.02)


def _cli(stack: Stack, *args: str, secret: str | None = None) -> None:
    env = stack.env if secret is None else {**stack.env, "WEBHOOK_SECRET": secret}
    result = run_cli(env, "tenants", *args)
    assert result.returncode == 0, result.stderr


def _replace(stack: Stack, tenant_id: str, new: str) -> None:
    """Rotate to `new` and retire the old secret at once, as for a leaked secret."""
    _cli(stack, "rotate-secret", tenant_id, secret=new)
    _cli(stack, "retire-secret", tenant_id)


def test_rotation_accepts_both_then_retiring_refuses_the_old_secret_within_the_bound(
    stack: Stack, client: httpx.Client
) -> None:
    tenant = stack.add_tenant(f"tenant-rot-{uuid.uuid4().hex[:6]}")
    old, new = tenant.webhook_secret, f"whsec-new-{uuid.uuid4().hex}"
    assert _deliver(stack, client, tenant, old) == 202  # the old secret is now cached for 300 s
    _cli(stack, "rotate-secret", tenant.id, secret=new)
    _within_bound(lambda: _deliver(stack, client, tenant, new) == 202)
    assert _deliver(stack, client, tenant, old) == 202  # both, until the old one is retired
    _cli(stack, "retire-secret", tenant.id)
    _within_bound(lambda: _deliver(stack, client, tenant, old) == 401)
    assert _deliver(stack, client, tenant, new) == 202


def test_job_reads_use_the_same_rule_and_see_a_rotation_within_the_bound(
    stack: Stack, client: httpx.Client
) -> None:
    tenant = stack.add_tenant(f"tenant-read-{uuid.uuid4().hex[:6]}")
    body = stack.payload(f"T{uuid.uuid4().hex[:10]}")
    job_id = client.post(WEBHOOK, content=body, headers=stack.webhook_headers(tenant, body)).json()["job_id"]
    path = f"/api/v1/jobs/{job_id}"

    def read_with(secret: str) -> int:
        headers = stack.job_headers(dataclasses.replace(tenant, webhook_secret=secret), path)
        return client.get(path, headers=headers).status_code

    assert read_with(tenant.webhook_secret) == 200
    new = f"whsec-new-{uuid.uuid4().hex}"
    _replace(stack, tenant.id, new)
    # Was up to the secret cache's TTL (300 s) for reads: they had their own look-up and caching.
    _within_bound(lambda: read_with(new) == 200)
    _within_bound(lambda: read_with(tenant.webhook_secret) == 401)


def test_unknown_tenant_is_cached_and_seen_once_added(stack: Stack, client: httpx.Client) -> None:
    tenant_id = f"tenant-new-{uuid.uuid4().hex[:6]}"
    stranger = TenantFixture(tenant_id, f"whsec-{uuid.uuid4().hex}", tenant_id, "authtoken", "x")
    assert _deliver(stack, client, stranger, stranger.webhook_secret) == 401  # cached as unknown
    tenant = stack.add_tenant(tenant_id)
    _within_bound(lambda: _deliver(stack, client, tenant, tenant.webhook_secret) == 202)


def test_disabling_refuses_reads_within_the_bound(stack: Stack, client: httpx.Client) -> None:
    tenant = stack.add_tenant(f"tenant-off-{uuid.uuid4().hex[:6]}")
    body = stack.payload(f"T{uuid.uuid4().hex[:10]}")
    job_id = client.post(WEBHOOK, content=body, headers=stack.webhook_headers(tenant, body)).json()["job_id"]
    path = f"/api/v1/jobs/{job_id}"
    assert client.get(path, headers=stack.job_headers(tenant, path)).status_code == 200
    _cli(stack, "disable", tenant.id)
    _within_bound(lambda: client.get(path, headers=stack.job_headers(tenant, path)).status_code == 401)


# Without announcements: an authenticator whose listener never connects (nothing listens on its
# port) may not trust its caches beyond the bound, whatever their TTL.


@pytest.fixture
def deaf_authenticator(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[TenantAuthenticator]:
    for key, value in stack.env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()  # type: ignore[call-arg]
    db = Database(create_app_engine(settings))
    store = SecretStore.from_settings(settings)
    nowhere = settings.model_copy(
        update={"database_url": None, "database_host": "127.0.0.1", "database_port": free_port()}
    )
    auth = TenantAuthenticator(
        TenantDirectory(db, store),
        store,
        secret_prefix=settings.tenant_secret_prefix,
        connect_kwargs=app_connect_kwargs(nowhere),
    )
    assert store.ttl == 300
    yield auth
    db.dispose()


def test_without_announcements_a_retired_secret_is_refused_within_the_bound(
    stack: Stack, deaf_authenticator: TenantAuthenticator
) -> None:
    tenant = stack.add_tenant(f"tenant-deaf-{uuid.uuid4().hex[:6]}")
    message = b'{"ticket_id": "1"}'

    async def scenario() -> float:
        deaf_authenticator.listener.start()
        try:
            await deaf_authenticator.authenticate(tenant.id, sign(tenant.webhook_secret, message), message)
            assert not deaf_authenticator.listener.live()
            await asyncio.to_thread(_replace, stack, tenant.id, f"whsec-{uuid.uuid4().hex}")
            started = time.monotonic()
            while True:
                try:
                    await deaf_authenticator.authenticate(
                        tenant.id, sign(tenant.webhook_secret, message), message
                    )
                except Unauthorized:
                    return time.monotonic() - started
                assert time.monotonic() - started <= REVOCATION_BOUND_SECONDS
                await asyncio.sleep(0.05)
        finally:
            await deaf_authenticator.listener.stop()

    assert asyncio.run(scenario()) <= REVOCATION_BOUND_SECONDS
