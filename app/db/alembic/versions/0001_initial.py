"""Tenants, enhancement jobs and history, with row-level security per tenant.

Revision ID: 0001
Revises:
Create Date: 2025-11-23
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# Expand step (the first revision: there is no previous release's code).
compatible_with_previous: bool = True

TENANT_TABLES = ("tenants", "enhancement_jobs", "enhancement_history", "ticket_history")


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=16)


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    default = None if nullable else sa.text("now()")
    return sa.Column(name, sa.DateTime(timezone=True), server_default=default, nullable=nullable)


def _create_tables() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("servicedesk_base_url", sa.String(500), nullable=False),
        sa.Column("auth_mode", _enum("auth_mode", "authtoken", "oauth"), nullable=False),
        sa.Column("secret_id", sa.String(512), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
    )
    op.create_table(
        "enhancement_jobs",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("ticket_id", sa.String(64), nullable=False),
        sa.Column("dedupe_key", sa.String(200), nullable=False),
        sa.Column("body_sha256", sa.String(64), nullable=False),
        sa.Column("status", _enum("job_status", "queued", "running", "succeeded", "failed"), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("error", sa.Text()),
        sa.Column("note_key", sa.Uuid(), nullable=False),
        sa.Column("note_state", _enum("note_state", "none", "posting", "posted"), nullable=False),
        sa.Column("note_id", sa.String(64)),
        sa.Column("lease_until", sa.DateTime(timezone=True)),
        _timestamp("enqueued_at"),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        _timestamp("finished_at", nullable=True),
        sa.UniqueConstraint("tenant_id", "dedupe_key", name="uq_enhancement_jobs_delivery"),
    )
    op.create_index("ix_enhancement_jobs_tenant_id", "enhancement_jobs", ["tenant_id"])
    op.create_index(
        "ix_enhancement_jobs_unfinished",
        "enhancement_jobs",
        ["enqueued_at"],
        postgresql_where=sa.text("status IN ('queued', 'running')"),
    )
    op.create_table(
        "enhancement_history",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("job_id", sa.Uuid(), sa.ForeignKey("enhancement_jobs.id"), nullable=False),
        sa.Column("ticket_id", sa.String(64), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("prompt_version", sa.String(32), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("category", sa.String(200)),
        sa.Column("priority", sa.String(50)),
        sa.Column("next_steps", postgresql.JSONB(), nullable=False),
        sa.Column("note_id", sa.String(64)),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        _timestamp("created_at"),
    )
    op.create_index("ix_enhancement_history_tenant_id", "enhancement_history", ["tenant_id"])
    op.create_index("ix_enhancement_history_job_id", "enhancement_history", ["job_id"])
    op.create_table(
        "ticket_history",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("job_id", sa.Uuid(), sa.ForeignKey("enhancement_jobs.id"), nullable=False),
        sa.Column("ticket_id", sa.String(64), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("status", sa.String(100)),
        sa.Column("priority", sa.String(100)),
        sa.Column("snapshot", postgresql.JSONB(), nullable=False),
        _timestamp("fetched_at"),
    )
    op.create_index("ix_ticket_history_tenant_id", "ticket_history", ["tenant_id"])
    op.create_index("ix_ticket_history_job_id", "ticket_history", ["job_id"])


def _enable_rls() -> None:
    # `current_setting(..., true)` is NULL when no tenant is set, so such a session sees no rows.
    # The owner (migrations, admin CLI) is exempt because RLS is enabled, not forced.
    for table in TENANT_TABLES:
        column = "id" if table == "tenants" else "tenant_id"
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} "
            f"USING ({column} = current_setting('app.tenant_id', true)) "
            f"WITH CHECK ({column} = current_setting('app.tenant_id', true))"
        )


def _create_helpers() -> None:
    # The sweeper and the metrics collector need cross-tenant reads of job ids and counts only, not
    # row access: SECURITY DEFINER functions owned by the owner give exactly that.
    op.execute(
        """
        CREATE FUNCTION app_claim_stale_jobs(stale_after_seconds integer, max_jobs integer)
        RETURNS TABLE (job_id uuid, tenant_id varchar)
        LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
            UPDATE enhancement_jobs AS j
               SET enqueued_at = now(), updated_at = now()
             WHERE j.id IN (
                   SELECT s.id FROM enhancement_jobs AS s
                    WHERE s.status IN ('queued', 'running')
                      AND s.enqueued_at < now() - make_interval(secs => stale_after_seconds)
                      AND (s.status = 'queued' OR s.lease_until < now())
                    ORDER BY s.enqueued_at
                    LIMIT max_jobs
                      FOR UPDATE SKIP LOCKED)
            RETURNING j.id, j.tenant_id
        $$
        """
    )
    op.execute(
        """
        CREATE FUNCTION app_job_status_counts()
        RETURNS TABLE (status varchar, count bigint)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
            SELECT status, count(*) FROM enhancement_jobs GROUP BY status
        $$
        """
    )
    for function in ("app_claim_stale_jobs(integer, integer)", "app_job_status_counts()"):
        op.execute(f"REVOKE ALL ON FUNCTION {function} FROM PUBLIC")


def upgrade() -> None:
    _create_tables()
    _enable_rls()
    _create_helpers()


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS app_job_status_counts()")
    op.execute("DROP FUNCTION IF EXISTS app_claim_stale_jobs(integer, integer)")
    for table in reversed(TENANT_TABLES):
        op.drop_table(table)
