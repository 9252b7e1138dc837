"""One job per signed delivery content, whatever X-Delivery-ID says.

X-Delivery-ID is not covered by the signature, so a captured delivery replayed under a new id would
otherwise become a second job and a second note. The unique index makes "same tenant, ticket and body"
a duplicate atomically, next to the existing per-delivery-id constraint.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# Expand step (a new unique index; the previous code already treats a duplicate as a replay).
compatible_with_previous: bool = True


def upgrade() -> None:
    op.create_index(
        "uq_enhancement_jobs_content",
        "enhancement_jobs",
        ["tenant_id", "ticket_id", "body_sha256"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_enhancement_jobs_content", table_name="enhancement_jobs")
