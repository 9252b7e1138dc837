"""Accept a webhook delivery in one statement: `app_accept_delivery`.

The webhook used to take two transactions (tenant look-up, then insert) and up to three statements of
the second one: ~10 round trips and most of the API's CPU per delivery (docs/performance.md). This
function does it in one call, in the order row-level security needs: set the tenant for the
transaction, refuse an unknown or disabled tenant, insert, or on a duplicate return the existing job.

It runs with the caller's rights (SECURITY INVOKER): the app role's RLS policies apply to every row it
touches, exactly as with the statements it replaces.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# Expand step (a new function; the previous code does not call it).
compatible_with_previous: bool = True

SIGNATURE = "app_accept_delivery(varchar, varchar, varchar, varchar)"


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION app_accept_delivery(
            p_tenant varchar, p_ticket varchar, p_dedupe_key varchar, p_body_sha256 varchar
        )
        RETURNS TABLE (job_id uuid, created boolean)
        LANGUAGE plpgsql SECURITY INVOKER SET search_path = pg_catalog, public AS $$
        BEGIN
            -- Transaction-local, like Database.tenant(): the policies below compare against it.
            PERFORM set_config('app.tenant_id', p_tenant, true);
            -- No row: unknown or disabled tenant. Checked here, not from a cache, so disabling a
            -- tenant refuses its next delivery.
            IF NOT EXISTS (SELECT 1 FROM tenants AS t WHERE t.id = p_tenant AND t.enabled) THEN
                RETURN;
            END IF;
            RETURN QUERY
                INSERT INTO enhancement_jobs AS j
                       (id, tenant_id, ticket_id, dedupe_key, body_sha256, status, note_key, note_state)
                VALUES (gen_random_uuid(), p_tenant, p_ticket, p_dedupe_key, p_body_sha256, 'queued',
                        gen_random_uuid(), 'none')
                -- Either unique index makes it a duplicate: the same delivery id, or the same signed
                -- content (X-Delivery-ID is not signed, so a replay under a new id is the same job).
                ON CONFLICT DO NOTHING
                RETURNING j.id, true;
            IF NOT FOUND THEN
                RETURN QUERY
                    SELECT j.id, false FROM enhancement_jobs AS j
                     WHERE j.tenant_id = p_tenant
                       AND (j.dedupe_key = p_dedupe_key
                            OR (j.ticket_id = p_ticket AND j.body_sha256 = p_body_sha256))
                     ORDER BY j.created_at
                     LIMIT 1;
            END IF;
        END
        $$
        """
    )
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION IF EXISTS {SIGNATURE}")
