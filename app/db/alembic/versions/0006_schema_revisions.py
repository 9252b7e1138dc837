"""`schema_revisions`: every revision applied to this database, its parent, and whether the previous
release's code runs against it.

Alembic's own `alembic_version` holds only the current revision, and a release knows only the
revisions in its own code: a rolled-back release meeting a newer database could not tell an expand
step from a contract step. This table lets it (app/db/compat.py): env.py records each revision as it
is applied (and removes it when downgraded); the rows of the revisions before this one are written
here, once.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# Expand step (a new table the previous code never reads).
compatible_with_previous: bool = True

EARLIER = [("0001", None), ("0002", "0001"), ("0003", "0002"), ("0004", "0003"), ("0005", "0004")]


def upgrade() -> None:
    table = op.create_table(
        "schema_revisions",
        sa.Column("revision", sa.String(32), primary_key=True),
        sa.Column("down_revision", sa.String(32), nullable=True),
        sa.Column("compatible_with_previous", sa.Boolean(), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    )
    op.bulk_insert(
        table,
        [{"revision": r, "down_revision": d, "compatible_with_previous": True} for r, d in EARLIER],
    )


def downgrade() -> None:
    op.drop_table("schema_revisions")
