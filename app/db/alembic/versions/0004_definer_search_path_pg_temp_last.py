"""SECURITY DEFINER functions: `pg_temp` last in their search_path, schema-qualified bodies.

PostgreSQL searches the session's temporary schema first unless the search_path names `pg_temp`.
With `search_path = pg_catalog, public`, a role that may create temporary objects could shadow
`enhancement_jobs` with a temporary view (or a table with a trigger) that calls a temporary function:
inside these functions that function ran as the schema owner, outside row-level security.

Now `pg_temp` comes last and every table and function is named with its schema, so the bodies resolve
to the owner's objects whatever the caller created. `CREATE OR REPLACE` keeps owner and grants
(EXECUTE for the app role only). `app_accept_delivery` (0003) is SECURITY INVOKER: it runs with its
caller's own rights, so a shadow could gain that caller nothing, and it is left as it is. The app
role is also denied temporary objects at all (`app/db/migrate.py`).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# Expand step (same function signatures, only their search_path changes).
compatible_with_previous: bool = True

CLAIM_STALE_JOBS = """
    CREATE OR REPLACE FUNCTION public.app_claim_stale_jobs(stale_after_seconds integer, max_jobs integer)
    RETURNS TABLE (job_id uuid, tenant_id varchar)
    LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
        UPDATE public.enhancement_jobs AS j
           SET enqueued_at = pg_catalog.now(), updated_at = pg_catalog.now()
         WHERE j.id IN (
               SELECT s.id FROM public.enhancement_jobs AS s
                WHERE s.status IN ('queued', 'running')
                  AND s.enqueued_at
                      < pg_catalog.now() - pg_catalog.make_interval(secs => stale_after_seconds)
                  AND (s.status = 'queued' OR s.lease_until < pg_catalog.now())
                ORDER BY s.enqueued_at
                LIMIT max_jobs
                  FOR UPDATE SKIP LOCKED)
        RETURNING j.id, j.tenant_id
    $$
"""

JOB_STATUS_COUNTS = """
    CREATE OR REPLACE FUNCTION public.app_job_status_counts()
    RETURNS TABLE (status varchar, count bigint)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
        SELECT s.status, pg_catalog.count(*) FROM public.enhancement_jobs AS s GROUP BY s.status
    $$
"""

# The definitions of 0001, verbatim, so a downgrade leaves the schema exactly as 0003 had it.
PREVIOUS_CLAIM_STALE_JOBS = """
    CREATE OR REPLACE FUNCTION app_claim_stale_jobs(stale_after_seconds integer, max_jobs integer)
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

PREVIOUS_JOB_STATUS_COUNTS = """
    CREATE OR REPLACE FUNCTION app_job_status_counts()
    RETURNS TABLE (status varchar, count bigint)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
        SELECT status, count(*) FROM enhancement_jobs GROUP BY status
    $$
"""


def upgrade() -> None:
    op.execute(CLAIM_STALE_JOBS)
    op.execute(JOB_STATUS_COUNTS)


def downgrade() -> None:
    op.execute(PREVIOUS_CLAIM_STALE_JOBS)
    op.execute(PREVIOUS_JOB_STATUS_COUNTS)
