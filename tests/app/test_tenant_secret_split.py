"""Tenant secrets split in two: webhook secrets (the API's) and the ServiceDesk Plus credential (the
worker's), each readable only by its role, and the migration of tenants created with one combined
secret (`python -m app tenants split-secrets`).

A tenant created the old way is set up here exactly as the previous release's `tenants add` left it:
one secret `<prefix><tenant>` holding both, and the row naming it in `secret_id`.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from alembic import command
from botocore.exceptions import ClientError
from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from app.db.migrate import alembic_config
from app.signing import sign
from harness.moto_server import MotoServer
from harness.postgres import PostgresServer
from harness.processes import WorkerProcess, run_cli
from harness.stack import Stack, TenantFixture

WEBHOOK = "/webhook/servicedesk"


def _old_way_tenant(stack: Stack, moto: MotoServer) -> TenantFixture:
    """A tenant as the previous release's CLI created it: one combined secret, the row naming it."""
    tenant_id = f"tenant-old-{uuid.uuid4().hex[:6]}"
    secret, credential = f"whsec-{uuid.uuid4().hex}", f"sdp-{uuid.uuid4().hex}"
    stack.servicedesk.add_instance(tenant_id, "authtoken", credential)
    combined = f"{stack.secret_prefix}{tenant_id}"
    moto.secretsmanager().create_secret(
        Name=combined,
        SecretString=json.dumps({"webhook_secrets": [secret], "servicedesk_credential": credential}),
    )
    with stack.owner.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO tenants (id, name, servicedesk_base_url, auth_mode, secret_id, enabled)"
                " VALUES (:id, :name, :url, 'authtoken', :secret_id, true)"
            ),
            {
                "id": tenant_id,
                "name": "Old",
                "url": stack.servicedesk.base_url(tenant_id),
                "secret_id": combined,
            },
        )
        conn.execute(text("SELECT pg_notify('ai_agents_tenant_changed', :id)"), {"id": tenant_id})
    return TenantFixture(tenant_id, secret, tenant_id, "authtoken", credential)


def _enhanced(stack: Stack, client: httpx.Client, tenant: TenantFixture) -> dict[str, Any]:
    """Deliver a signed webhook for a new ticket; return the finished job (the worker used the
    credential: the fake ServiceDesk Plus answers 401 to any other)."""
    body = stack.payload(stack.new_ticket(tenant))
    response = client.post(WEBHOOK, content=body, headers=stack.webhook_headers(tenant, body))
    assert response.status_code == 202, response.text
    return stack.wait_for_job(response.json()["job_id"])


def _secret(moto: MotoServer, name: str) -> dict[str, Any]:
    return json.loads(moto.secretsmanager().get_secret_value(SecretId=name)["SecretString"])


def _row(stack: Stack, tenant_id: str) -> dict[str, Any]:
    with stack.owner.connect() as conn:
        row = conn.execute(text("SELECT * FROM tenants WHERE id = :id"), {"id": tenant_id}).mappings().one()
        return dict(row)


def _split(stack: Stack, *args: str) -> str:
    result = run_cli(stack.env, "tenants", "split-secrets", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_a_tenant_created_the_old_way_keeps_working_through_the_split(
    stack: Stack, client: httpx.Client, worker: WorkerProcess, moto: MotoServer
) -> None:
    tenant = _old_way_tenant(stack, moto)
    combined = f"{stack.secret_prefix}{tenant.id}"
    assert _enhanced(stack, client, tenant)["status"] == "succeeded"  # the new code reads the old layout

    _split(stack, tenant.id)
    assert _secret(moto, f"{stack.secret_prefix}webhook/{tenant.id}") == {
        "webhook_secrets": [tenant.webhook_secret]
    }
    assert _secret(moto, f"{stack.secret_prefix}servicedesk/{tenant.id}") == {
        "servicedesk_credential": tenant.credential
    }
    assert _secret(moto, combined)["servicedesk_credential"] == tenant.credential  # kept, for a rollback
    row = _row(stack, tenant.id)
    assert (row["webhook_secret_id"], row["credential_secret_id"], row["secret_id"]) == (
        f"{stack.secret_prefix}webhook/{tenant.id}",
        f"{stack.secret_prefix}servicedesk/{tenant.id}",
        combined,
    )
    assert _enhanced(stack, client, tenant)["status"] == "succeeded"

    assert "already split" in _split(stack, tenant.id)  # idempotent

    _split(stack, tenant.id, "--delete-combined")
    assert "DeletedDate" in moto.secretsmanager().describe_secret(SecretId=combined)
    assert _row(stack, tenant.id)["secret_id"] is None
    # The combined secret cannot be read any more: what works now works from the split secrets alone.
    assert _enhanced(stack, client, tenant)["status"] == "succeeded"
    assert "already split" in _split(stack, tenant.id, "--delete-combined")


def test_split_all_and_rotation_keep_the_combined_secret_in_step_until_it_is_deleted(
    stack: Stack, client: httpx.Client, moto: MotoServer
) -> None:
    """While the combined secret is kept, the previous release (a rollback) must see every change."""
    tenant = _old_way_tenant(stack, moto)
    assert "already split" in _split(stack, "--all")  # the suite's tenants were created split
    new = f"whsec-new-{uuid.uuid4().hex}"
    rotated = run_cli({**stack.env, "WEBHOOK_SECRET": new}, "tenants", "rotate-secret", tenant.id)
    assert rotated.returncode == 0, rotated.stderr
    combined = _secret(moto, f"{stack.secret_prefix}{tenant.id}")
    assert combined["webhook_secrets"] == [new, tenant.webhook_secret]
    assert _secret(moto, f"{stack.secret_prefix}webhook/{tenant.id}") == {
        "webhook_secrets": [new, tenant.webhook_secret]
    }
    body = stack.payload(f"T{uuid.uuid4().hex[:10]}")
    headers = {**stack.webhook_headers(tenant, body), "X-ServiceDesk-Signature": sign(new, body)}
    assert client.post(WEBHOOK, content=body, headers=headers).status_code == 202


def test_a_tenant_added_now_has_only_the_split_secrets(stack: Stack, moto: MotoServer) -> None:
    tenant = stack.add_tenant(f"tenant-split-{uuid.uuid4().hex[:6]}")
    row = _row(stack, tenant.id)
    assert row["secret_id"] is None
    assert _secret(moto, row["webhook_secret_id"]) == {"webhook_secrets": [tenant.webhook_secret]}
    assert _secret(moto, row["credential_secret_id"]) == {"servicedesk_credential": tenant.credential}
    with pytest.raises(ClientError):
        moto.secretsmanager().describe_secret(SecretId=f"{stack.secret_prefix}{tenant.id}")


# Migration 0005 is backward compatible: the previous release's writes still fit, and a downgrade is
# refused while a tenant exists only in the split layout (the previous release could not read it).


def test_migration_0005_takes_old_rows_and_refuses_to_downgrade_over_split_only_tenants(
    postgres: PostgresServer, stack: Stack
) -> None:
    engine = create_engine(postgres.create_database(f"split_{uuid.uuid4().hex[:8]}"), poolclass=NullPool)
    insert = text(
        "INSERT INTO tenants (id, name, servicedesk_base_url, auth_mode, secret_id, enabled)"
        " VALUES (:id, 'T', 'https://sdp.example.com', 'authtoken', :secret_id, true)"
    )
    try:
        with engine.connect() as conn:
            alembic = alembic_config()
            alembic.attributes["connection"] = conn
            command.upgrade(alembic, "head")
            conn.execute(insert, {"id": "old", "secret_id": "p/old"})  # what the previous release writes
            conn.execute(
                text(
                    "INSERT INTO tenants (id, name, servicedesk_base_url, auth_mode, enabled,"
                    " webhook_secret_id, credential_secret_id)"
                    " VALUES ('new', 'T', 'https://sdp.example.com', 'authtoken', true, 'p/webhook/new',"
                    " 'p/servicedesk/new')"
                )
            )
            conn.commit()
            with pytest.raises(SQLAlchemyError):  # neither layout: nowhere to read from
                conn.execute(insert, {"id": "none", "secret_id": None})
            conn.rollback()
            with pytest.raises(Exception, match="split layout"):
                command.downgrade(alembic, "0004")
            conn.rollback()
            conn.execute(text("DELETE FROM tenants WHERE id = 'new'"))
            conn.commit()
            command.downgrade(alembic, "0004")
            conn.commit()
            command.upgrade(alembic, "head")
            conn.commit()
            assert conn.execute(text("SELECT secret_id FROM tenants")).scalars().all() == ["p/old"]
    finally:
        engine.dispose()
