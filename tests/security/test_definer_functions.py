"""SECURITY DEFINER helpers run as the schema owner: nothing the app role controls may steer them.

Unless `pg_temp` is named in a search_path, PostgreSQL searches the session's temporary schema first.
A role that may create temporary objects can then shadow a table a definer function reads with a
temporary view or table whose column or trigger calls a temporary function; that function runs as
the owner, outside row-level security. Two layers stop it, and each is tested on its own: the app
role cannot create temporary objects at all, and the definer functions name `public.` tables with
`pg_temp` last in their search_path.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psycopg
import pytest
from alembic import command
from alembic.config import Config
from psycopg import sql
from sqlalchemy import Connection, Engine, NullPool, create_engine, text
from sqlalchemy.exc import DBAPIError

from app.db.migrate import alembic_config, ensure_app_role
from harness.net import wait_until
from harness.postgres import PostgresServer
from harness.stack import APP_ROLE, Stack

VICTIM = "definer-victim"
VICTIM_NAME = "Victim Ltd"
PWNED = "renamed through a definer function"

# Runs as whoever calls it. As the app role it may not update `tenants` (SELECT only); it succeeds
# only when a definer function, running as the owner, reaches it.
_RENAME_VICTIM = f"""
    UPDATE public.tenants SET name = '{PWNED}' WHERE id = '{VICTIM}';
"""


@dataclass(frozen=True)
class Shadow:
    """Temporary objects that shadow a table one definer function reads, and the call that runs it."""

    setup: tuple[str, ...]
    call: str


SHADOWS = {
    # A view's function calls run as the current user: inside the definer function, the owner.
    "app_job_status_counts": Shadow(
        setup=(
            "CREATE FUNCTION pg_temp.rename_victim() RETURNS varchar LANGUAGE plpgsql AS $$ BEGIN"
            f" {_RENAME_VICTIM} RETURN '{PWNED}'; END $$",
            "CREATE TEMP VIEW enhancement_jobs AS SELECT pg_temp.rename_victim() AS status",
        ),
        call="SELECT status FROM app_job_status_counts()",
    ),
    # Triggers run as the current user too. The fake row is ten years stale, so only it qualifies
    # for a one-year threshold: the real table is left alone either way.
    "app_claim_stale_jobs": Shadow(
        setup=(
            "CREATE FUNCTION pg_temp.rename_victim() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            f" {_RENAME_VICTIM} RETURN NEW; END $$",
            "CREATE TEMP TABLE enhancement_jobs (id uuid, tenant_id varchar, status varchar,"
            " enqueued_at timestamptz, lease_until timestamptz, updated_at timestamptz)",
            "INSERT INTO enhancement_jobs VALUES (gen_random_uuid(), 'forged', 'queued',"
            " now() - interval '10 years', NULL, now())",
            "CREATE TRIGGER rename_victim BEFORE UPDATE ON enhancement_jobs"
            " FOR EACH ROW EXECUTE FUNCTION pg_temp.rename_victim()",
        ),
        call="SELECT tenant_id FROM app_claim_stale_jobs(365 * 86400, 10)",
    ),
}


def _victim_name(stack: Stack) -> str:
    with stack.owner.connect() as conn:
        query = text("SELECT name FROM tenants WHERE id = :id")
        return str(conn.execute(query, {"id": VICTIM}).scalar_one())


@pytest.fixture
def victim(stack: Stack) -> Iterator[str]:
    """A tenant of its own, so an attack that works renames nobody the other tests rely on."""
    with stack.owner.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO tenants (id, name, servicedesk_base_url, auth_mode, secret_id)"
                " VALUES (:id, :name, 'https://sdp.invalid', 'authtoken', 'unused')"
            ),
            {"id": VICTIM, "name": VICTIM_NAME},
        )
    yield VICTIM
    with stack.owner.begin() as conn:
        conn.execute(text("DELETE FROM tenants WHERE id = :id"), {"id": VICTIM})


@pytest.fixture
def app_engine(stack: Stack) -> Iterator[Engine]:
    # NullPool: temporary objects die with their session, never handed to the next test.
    engine = create_engine(stack.env["DATABASE_URL"], poolclass=NullPool)
    yield engine
    engine.dispose()


@pytest.fixture
def temp_capable_engine(stack: Stack) -> Iterator[Engine]:
    """The app role's rights plus TEMPORARY: what the definer functions must withstand on their own."""
    role, password = f"definer_probe_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    ident, database = sql.Identifier(role), sql.Identifier(stack.database)
    _owner_execute(
        stack,
        sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE {}").format(
            ident, sql.Literal(password), sql.Identifier(APP_ROLE)
        ),
        sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(database, ident),
    )
    engine = create_engine(stack.postgres.url(role, password, stack.database), poolclass=NullPool)
    try:
        yield engine
    finally:
        engine.dispose()
        # The role's temporary objects go when its backend exits, which happens after the client has
        # disconnected: DROP ROLE before that fails ("owner of table pg_temp_N..."). Wait for what DROP
        # ROLE checks (the objects it owns) and for its sessions to end.
        wait_until(lambda: not _left_behind(stack, role), 30, interval=0.05, what=f"{role}'s sessions to end")
        _owner_execute(
            stack,
            sql.SQL("REVOKE ALL ON DATABASE {} FROM {}").format(database, ident),
            sql.SQL("DROP ROLE {}").format(ident),
        )


def _left_behind(stack: Stack, role: str) -> int:
    """The role's sessions plus the objects it owns (pg_shdepend's owner entries, as DROP ROLE sees)."""
    query = text(
        "SELECT (SELECT count(*) FROM pg_stat_activity WHERE usename = :role)"
        " + (SELECT count(*) FROM pg_shdepend d JOIN pg_roles r ON d.refobjid = r.oid"
        "    WHERE r.rolname = :role AND d.deptype = 'o')"
    )
    with stack.owner.connect() as conn:
        return int(conn.execute(query, {"role": role}).scalar_one())


def _owner_execute(stack: Stack, *statements: sql.Composed) -> None:
    with stack.owner.begin() as conn:
        raw = conn.connection.driver_connection
        assert isinstance(raw, psycopg.Connection)
        for statement in statements:
            raw.execute(statement)


def _attack(conn: Connection, shadow: Shadow) -> list[str]:
    """Plant the shadow and call the definer function, in one committed transaction."""
    with conn.begin():
        for statement in shadow.setup:
            conn.exec_driver_sql(statement)
        return [str(value) for value in conn.execute(text(shadow.call)).scalars()]


@pytest.mark.parametrize("function", sorted(SHADOWS))
def test_app_role_cannot_plant_temporary_objects(
    stack: Stack, victim: str, app_engine: Engine, function: str
) -> None:
    refusal = None
    with app_engine.connect() as conn:
        try:
            _attack(conn, SHADOWS[function])
        except DBAPIError as error:
            refusal = str(error.orig)
    assert _victim_name(stack) == VICTIM_NAME
    assert refusal is not None and "permission denied to create temporary tables" in refusal


@pytest.mark.parametrize("function", sorted(SHADOWS))
def test_definer_functions_ignore_temporary_shadows(
    stack: Stack, victim: str, temp_capable_engine: Engine, function: str
) -> None:
    with temp_capable_engine.connect() as conn:
        returned = _attack(conn, SHADOWS[function])
        # The shadow is really in place for this session: an unqualified name reaches it.
        shadowed = conn.execute(
            text("SELECT 'enhancement_jobs'::regclass = 'pg_temp.enhancement_jobs'::regclass")
        ).scalar_one()
        conn.rollback()
    assert shadowed is True
    assert _victim_name(stack) == VICTIM_NAME
    assert PWNED not in returned and "forged" not in returned


def _definer_functions(conn: Connection) -> dict[str, list[str]]:
    """Every SECURITY DEFINER function outside the system schemas, with its per-function settings."""
    rows = conn.execute(
        text(
            "SELECT p.oid::regprocedure::text, coalesce(p.proconfig, '{}') FROM pg_proc AS p"
            " JOIN pg_namespace AS n ON n.oid = p.pronamespace"
            " WHERE p.prosecdef AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
        )
    )
    return {str(name): list(config) for name, config in rows}


def _search_path(config: list[str]) -> list[str] | None:
    for setting in config:
        name, _, value = setting.partition("=")
        if name == "search_path":
            return [schema.strip().strip('"') for schema in value.split(",")]
    return None


def _unsafe_search_path(conn: Connection, path: list[str] | None) -> str | None:
    """Why `path` would let the app role steer a definer function, or None when it cannot."""
    if path is None:
        return "no search_path of its own: it runs with the caller's"
    if path[-1] != "pg_temp":
        return f"pg_temp is not last in {path}: it is searched first"
    for schema in path[:-1]:
        writable = conn.execute(
            text(
                "SELECT has_schema_privilege(:role, n.oid, 'CREATE') FROM pg_namespace AS n"
                " WHERE n.nspname = :schema"
            ),
            {"role": APP_ROLE, "schema": schema},
        ).scalar()
        if writable is None:
            return f"schema {schema} does not exist: whoever creates it first controls it"
        if writable:
            return f"the app role may create objects in {schema}"
    return None


def test_every_definer_function_has_a_search_path_the_app_role_cannot_write(stack: Stack) -> None:
    with stack.owner.connect() as conn:
        functions = _definer_functions(conn)
        unsafe = {
            name: reason
            for name, config in functions.items()
            if (reason := _unsafe_search_path(conn, _search_path(config))) is not None
        }
        temporary = conn.execute(
            text("SELECT has_database_privilege(:role, current_database(), 'TEMPORARY')"),
            {"role": APP_ROLE},
        ).scalar_one()
    assert functions, "no SECURITY DEFINER function found: is the query still right?"
    assert unsafe == {}
    assert temporary is False


def _migrate(conn: Connection, step: Callable[[Config, str], None], revision: str) -> dict[str, str | None]:
    """Run `step` (alembic's upgrade or downgrade) to `revision`, then say why each definer function
    is unsafe (None: safe)."""
    alembic = alembic_config()
    alembic.attributes["connection"] = conn
    step(alembic, revision)
    conn.commit()
    return {
        name: _unsafe_search_path(conn, _search_path(settings))
        for name, settings in _definer_functions(conn).items()
    }


def _app_role_may_execute(conn: Connection, functions: dict[str, str | None]) -> bool:
    query = text("SELECT has_function_privilege(:role, :function, 'EXECUTE')")
    return all(conn.execute(query, {"role": APP_ROLE, "function": name}).scalar_one() for name in functions)


def test_downgrade_restores_the_previous_definitions_and_upgrade_fixes_them_again(
    postgres: PostgresServer, stack: Stack
) -> None:
    # A database of its own: the session's database stays at head for the other tests.
    engine = create_engine(postgres.create_database(f"definer_{uuid.uuid4().hex[:8]}"), poolclass=NullPool)
    with engine.connect() as conn:
        head = _migrate(conn, command.upgrade, "head")
        ensure_app_role(conn, APP_ROLE, None)
        conn.commit()
        before = _migrate(conn, command.downgrade, "0003")
        after = _migrate(conn, command.upgrade, "head")
        granted = _app_role_may_execute(conn, after)
    engine.dispose()
    assert set(head) == {"app_claim_stale_jobs(integer,integer)", "app_job_status_counts()"}
    assert all(reason is None for reason in head.values())
    assert all(reason is not None and "pg_temp is not last" in reason for reason in before.values())
    assert after == head
    # CREATE OR REPLACE, both ways: the grants made once by `migrate` survive the round trip.
    assert granted
