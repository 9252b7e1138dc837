"""Tenant secrets in two: webhook secrets (read by the API) apart from the ServiceDesk Plus credential
(read by the worker).

Until now one secret per tenant held both, named by `tenants.secret_id`, so the internet-facing API
could read every tenant's credential. A tenant now names its two secrets, `webhook_secret_id` and
`credential_secret_id`; `secret_id` names the combined secret of the old layout while it is kept, and
is NULL once `tenants split-secrets --delete-combined` removed it (and for tenants created since).

Backward compatible: both new columns are nullable and the previous release neither reads nor writes
them, its rows (combined secret only) satisfy the new check, and its code still reads `secret_id` for
every tenant created or split while a combined secret is kept. A downgrade is refused while some tenant
exists only in the split layout: the previous release could not read its secrets.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# Expand step (nullable new columns and a relaxed NOT NULL; the previous code still reads secret_id).
compatible_with_previous: bool = True

# Every tenant has somewhere to read its secrets from: the combined secret, or both split ones.
SECRETS_CHECK = (
    "secret_id IS NOT NULL OR (webhook_secret_id IS NOT NULL AND credential_secret_id IS NOT NULL)"
)


def upgrade() -> None:
    op.add_column("tenants", sa.Column("webhook_secret_id", sa.String(512), nullable=True))
    op.add_column("tenants", sa.Column("credential_secret_id", sa.String(512), nullable=True))
    op.alter_column("tenants", "secret_id", existing_type=sa.String(512), nullable=True)
    op.create_check_constraint(op.f("ck_tenants_secrets"), "tenants", SECRETS_CHECK)


def downgrade() -> None:
    split_only = (
        op.get_bind().execute(sa.text("SELECT count(*) FROM tenants WHERE secret_id IS NULL")).scalar()
    )
    if split_only:
        raise RuntimeError(
            f"{split_only} tenant(s) exist only in the split layout, which revision 0004's code cannot read;"
            " downgrade refused"
        )
    op.drop_constraint(op.f("ck_tenants_secrets"), "tenants", type_="check")
    op.alter_column("tenants", "secret_id", existing_type=sa.String(512), nullable=False)
    op.drop_column("tenants", "credential_secret_id")
    op.drop_column("tenants", "webhook_secret_id")
