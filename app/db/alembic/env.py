"""Alembic environment. `python -m app migrate` passes a connection that already holds the advisory
lock; running `alembic` directly falls back to the owner URL from the settings (no lock)."""

from __future__ import annotations

from typing import Any

from alembic import context
from alembic.runtime.migration import MigrationContext, MigrationInfo
from sqlalchemy import Connection, text

from app.db.compat import REVISIONS_TABLE
from app.db.models import Base

config = context.config
target_metadata = Base.metadata


def record_revision(ctx: MigrationContext, step: MigrationInfo, heads: Any, run_args: Any) -> None:
    """Keep `schema_revisions` in step: the revision just applied (with its compatibility flag), or
    its row removed when it was downgraded. Before the table exists there is nothing to keep."""
    connection = ctx.connection
    if connection is None or step.is_stamp or step.up_revision_id is None:
        return
    if connection.execute(text("SELECT to_regclass(:t)"), {"t": REVISIONS_TABLE}).scalar() is None:
        return
    if not step.is_upgrade:
        connection.execute(
            text("DELETE FROM schema_revisions WHERE revision = :r"), {"r": step.up_revision_id}
        )
        return
    script = step.up_revision
    module = getattr(script, "module", None)
    compatible = getattr(module, "compatible_with_previous", None)
    if not isinstance(compatible, bool):
        raise RuntimeError(
            f"migration {step.up_revision_id} must set compatible_with_previous to True or False"
        )
    connection.execute(
        text(
            "INSERT INTO schema_revisions (revision, down_revision, compatible_with_previous)"
            " VALUES (:r, :d, :c) ON CONFLICT (revision) DO UPDATE"
            " SET down_revision = EXCLUDED.down_revision,"
            " compatible_with_previous = EXCLUDED.compatible_with_previous"
        ),
        {"r": step.up_revision_id, "d": next(iter(step.down_revision_ids), None), "c": compatible},
    )


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        on_version_apply=record_revision,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from app.db.engine import create_owner_engine
    from app.secret_store import SecretStore
    from app.settings import load_settings

    settings = load_settings()
    engine = create_owner_engine(settings, SecretStore.from_settings(settings))
    with engine.connect() as conn:
        _run(conn)
        conn.commit()


if context.is_offline_mode():
    raise SystemExit("offline SQL generation is not supported; run `python -m app migrate`")
run_migrations_online()
