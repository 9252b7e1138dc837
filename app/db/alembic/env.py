"""Alembic environment. `python -m app migrate` passes a connection that already holds the advisory
lock; running `alembic` directly falls back to the owner URL from the settings (no lock)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from app.db.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
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
