"""Row-level security: the app role, scoped to tenant A, can neither read nor write tenant B's rows."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from harness.stack import Stack


def _seed_job(stack: Stack, tenant_id: str) -> str:
    job_id = str(uuid.uuid4())
    with stack.owner.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO enhancement_jobs (id, tenant_id, ticket_id, dedupe_key, body_sha256, status,"
                " note_key, note_state) VALUES (:id, :t, 'rls', :k, :body, 'succeeded', :nk, 'none')"
            ),
            # Each seeded job is a distinct delivery: its own dedupe key and its own body hash.
            {"id": job_id, "t": tenant_id, "k": f"rls:{job_id}", "body": job_id, "nk": str(uuid.uuid4())},
        )
    return job_id


def _as_tenant(conn: Connection, tenant_id: str) -> None:
    conn.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": tenant_id})


def test_app_role_is_not_owner_and_cannot_bypass_rls(app_conn: Connection) -> None:
    row = app_conn.execute(
        text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
    ).one()
    assert tuple(row) == (False, False)
    owner = app_conn.execute(
        text("SELECT tableowner FROM pg_tables WHERE tablename = 'enhancement_jobs'")
    ).scalar()
    assert owner != app_conn.execute(text("SELECT current_user")).scalar()


def test_tenant_a_cannot_read_tenant_b(stack: Stack, app_conn: Connection) -> None:
    a_job, b_job = _seed_job(stack, "tenant-a"), _seed_job(stack, "tenant-b")
    with app_conn.begin():
        _as_tenant(app_conn, "tenant-a")
        visible = {str(r[0]) for r in app_conn.execute(text("SELECT id FROM enhancement_jobs"))}
        tenants = {r[0] for r in app_conn.execute(text("SELECT id FROM tenants"))}
    assert a_job in visible
    assert b_job not in visible
    assert tenants == {"tenant-a"}


def test_tenant_a_cannot_update_tenant_b(stack: Stack, app_conn: Connection) -> None:
    b_job = _seed_job(stack, "tenant-b")
    with app_conn.begin():
        _as_tenant(app_conn, "tenant-a")
        result = app_conn.execute(
            text("UPDATE enhancement_jobs SET error = 'pwned' WHERE id = :id"), {"id": b_job}
        )
        assert result.rowcount == 0
    assert stack.job(b_job)["error"] is None


def test_tenant_a_cannot_insert_rows_for_tenant_b(app_conn: Connection) -> None:
    with pytest.raises(DBAPIError, match="row-level security"), app_conn.begin():
        _as_tenant(app_conn, "tenant-a")
        app_conn.execute(
            text(
                "INSERT INTO enhancement_jobs (id, tenant_id, ticket_id, dedupe_key, body_sha256, status,"
                " note_key, note_state) VALUES (:id, 'tenant-b', '1', 'x', 'x', 'queued', :nk, 'none')"
            ),
            {"id": str(uuid.uuid4()), "nk": str(uuid.uuid4())},
        )


def test_no_tenant_set_sees_nothing(stack: Stack, app_conn: Connection) -> None:
    _seed_job(stack, "tenant-a")
    with app_conn.begin():
        assert app_conn.execute(text("SELECT count(*) FROM enhancement_jobs")).scalar() == 0
        assert app_conn.execute(text("SELECT count(*) FROM tenants")).scalar() == 0


def test_app_role_cannot_change_tenants(app_conn: Connection) -> None:
    with pytest.raises(DBAPIError, match="permission denied"), app_conn.begin():
        _as_tenant(app_conn, "tenant-a")
        app_conn.execute(text("UPDATE tenants SET enabled = false WHERE id = 'tenant-a'"))
