"""`python -m app migrate`: Alembic upgrade to head under a PostgreSQL advisory lock, then the app role.

Alembic takes no lock of its own; two runners (two replicas' init containers, a re-run job) would race
on `alembic_version`. A session-level advisory lock held on the same connection Alembic uses makes the
second runner wait, then find the schema already at head.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import psycopg
from alembic import command
from psycopg import sql
from sqlalchemy import Connection, make_url, text

from app.db.compat import REVISIONS_TABLE, Verdict, alembic_config, assess, current_revision, head_revision
from app.db.engine import create_owner_engine
from app.secret_store import SecretStore
from app.settings import Settings, SettingsError

# Any constant works; it only has to be the same for every runner of this schema.
MIGRATION_LOCK_KEY = 0x61692D6167656E74  # "ai-agent"

__all__ = ["alembic_config", "current_revision", "head_revision", "migrate"]
log = logging.getLogger(__name__)


def app_role(settings: Settings) -> tuple[str, str | None]:
    """The non-owner role the service connects as, and its password when it uses one (local)."""
    if settings.database_url is not None:
        url = make_url(settings.database_url.get_secret_value())
        if not url.username:
            raise SettingsError("DATABASE_URL must name the app role (user@)")
        return url.username, url.password
    if not settings.database_user:
        raise SettingsError("DATABASE_USER is required")
    return settings.database_user, None


def _raw(connection: Connection) -> psycopg.Connection[object]:
    raw = connection.connection.driver_connection
    if not isinstance(raw, psycopg.Connection):
        raise TypeError("migrations need the psycopg driver")
    return raw


def ensure_app_role(connection: Connection, role: str, password: str | None) -> None:
    owner = connection.execute(text("SELECT current_user")).scalar_one()
    if owner == role:
        raise SettingsError("the app role must not be the schema owner: RLS would not apply to it")
    ident = sql.Identifier(role)
    exists = connection.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first()
    cursor = _raw(connection).cursor()
    if not exists:
        cursor.execute(sql.SQL("CREATE ROLE {} LOGIN").format(ident))
    # Whatever created the role, it must never bypass row-level security.
    cursor.execute(
        sql.SQL("ALTER ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB").format(ident)
    )
    if password is not None:
        cursor.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(ident, sql.Literal(password)))
    if connection.execute(text("SELECT 1 FROM pg_roles WHERE rolname = 'rds_iam'")).first():
        cursor.execute(sql.SQL("GRANT rds_iam TO {}").format(ident))
    database = connection.execute(text("SELECT current_database()")).scalar_one()
    grants = [
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), ident),
        sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(ident),
        sql.SQL("GRANT SELECT ON tenants, alembic_version, {} TO {}").format(
            sql.Identifier(REVISIONS_TABLE), ident
        ),
        sql.SQL("GRANT SELECT, INSERT, UPDATE ON enhancement_jobs TO {}").format(ident),
        sql.SQL("GRANT SELECT, INSERT ON enhancement_history, ticket_history TO {}").format(ident),
        sql.SQL("GRANT UPDATE (note_id) ON enhancement_history TO {}").format(ident),
        sql.SQL("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {}").format(ident),
        sql.SQL(
            "GRANT EXECUTE ON FUNCTION app_claim_stale_jobs(integer, integer), app_job_status_counts(), "
            "app_accept_delivery(varchar, varchar, varchar, varchar) TO {}"
        ).format(ident),
    ]
    for grant in grants:
        cursor.execute(grant)
    deny_temporary_objects(connection, role)


def deny_temporary_objects(connection: Connection, role: str) -> None:
    """No temporary tables, views or functions for the app role: nothing in the service needs one, and
    they are searched before any schema unless a search_path names `pg_temp`, so a SECURITY DEFINER
    function could be made to run one as the owner. Database-level, like CONNECT above, so it is
    re-asserted at every release rather than once by a migration; it only ever narrows the role.
    """
    database = sql.Identifier(connection.execute(text("SELECT current_database()")).scalar_one())
    # PUBLIC grants TEMPORARY by default; the role itself is named in case anyone granted it directly.
    _raw(connection).cursor().execute(
        sql.SQL("REVOKE TEMPORARY ON DATABASE {} FROM PUBLIC, {}").format(database, sql.Identifier(role))
    )
    # REVOKE only warns when it lacks the grant option, and the role may inherit TEMPORARY from
    # another role: check the effective privilege rather than trust the statement.
    still = connection.execute(
        text("SELECT has_database_privilege(:role, current_database(), 'TEMPORARY')"), {"role": role}
    ).scalar_one()
    if still:
        raise SettingsError(
            f"the app role {role} can still create temporary objects: revoke TEMPORARY on the database "
            "from the roles it is a member of, as the database owner"
        )


class SchemaAheadError(Exception):
    """The database is at a revision this release's code cannot run against; nothing was changed."""


@dataclass(frozen=True)
class MigrateResult:
    revision: str | None
    changed: bool
    message: str


def refuse_or_skip(verdict: Verdict) -> MigrateResult | None:
    """A database newer than this release's head: skip when compatible, refuse otherwise. None means
    migrate as usual (at head, behind, or empty)."""
    if verdict.status == "ahead_compatible":
        return MigrateResult(
            verdict.database,
            changed=False,
            message=f"{verdict.detail}: nothing to migrate, database left unchanged",
        )
    if verdict.newer:
        raise SchemaAheadError(
            f"{verdict.detail}. This release (head {verdict.code}) cannot run against it; nothing was "
            f"changed. Way out: deploy a release whose migrations include {verdict.database} (roll "
            f"forward), or restore the database to a point before it left {verdict.code} "
            "(docs/runbook.md, Rollback)."
        )
    return None


def migrate(settings: Settings, store: SecretStore | None) -> MigrateResult:
    """Upgrade to head and ensure the app role; safe to run concurrently.

    A database already past this release's head (a rollback) is left as it is when every revision
    beyond the head is compatible with this code, and refused before any change when one is not.
    """
    role, password = app_role(settings)
    engine = create_owner_engine(settings, store)
    try:
        with engine.connect() as connection:
            connection.execute(text("SET lock_timeout = '10min'"))
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            connection.commit()
            try:
                before = assess(connection)
                connection.rollback()
                skipped = refuse_or_skip(before)
                if skipped is not None:
                    log.info(skipped.message)
                    return skipped
                config = alembic_config()
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                connection.commit()
                ensure_app_role(connection, role, password)
                connection.commit()
                revision = current_revision(connection)
                changed = revision != before.database
                verb = f"upgraded from {before.database}" if changed else "already there"
                return MigrateResult(revision, changed, f"schema at revision {revision} ({verb})")
            finally:
                connection.rollback()
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
                connection.commit()
    finally:
        engine.dispose()
