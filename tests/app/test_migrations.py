"""Alembic is the only schema path; concurrent runners are serialised by the advisory lock; every
migration keeps the schema compatibility contract (app/db/compat.py) it declares."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, text

from app.db.compat import assess, recorded_revisions, script_directory
from app.db.migrate import alembic_config, head_revision
from app.db.models import Base
from harness.postgres import PostgresServer
from harness.processes import REPO, base_env, run_cli
from harness.stack import Stack


def test_migrated_schema_matches_the_models(stack: Stack) -> None:
    with stack.owner.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
        revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    assert diff == []
    assert revision == head_revision()


def test_rls_is_enabled_on_every_tenant_table(stack: Stack) -> None:
    with stack.owner.connect() as conn:
        rows = conn.execute(
            text("SELECT relname, relrowsecurity FROM pg_class WHERE relname = ANY(:names)"),
            {"names": ["tenants", "enhancement_jobs", "enhancement_history", "ticket_history"]},
        ).all()
    assert sorted(rows) == [
        ("enhancement_history", True),
        ("enhancement_jobs", True),
        ("tenants", True),
        ("ticket_history", True),
    ]


def test_concurrent_migrate_runs_are_safe(postgres: PostgresServer, stack: Stack) -> None:
    database = f"race_{uuid.uuid4().hex[:8]}"
    owner_url = postgres.create_database(database)
    env = base_env({
        **stack.env,
        "DATABASE_OWNER_URL": owner_url,
        "DATABASE_URL": stack.env["DATABASE_URL"].rsplit("/", 1)[0] + f"/{database}",
    })  # fmt: skip
    runners = [
        subprocess.Popen(
            [sys.executable, "-m", "app", "migrate"],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(3)
    ]
    results = [runner.communicate(timeout=120) for runner in runners]
    assert [runner.returncode for runner in runners] == [0, 0, 0], results
    engine = create_engine(owner_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [
            head_revision()
        ]
    engine.dispose()


# --- the schema compatibility contract ---------------------------------------------------------


def schema_snapshot(conn: Connection) -> tuple[dict[tuple[str, str], tuple[bool, bool]], set[str]]:
    """(table, column) -> (nullable, has default), and the public functions with their signatures:
    what code written for this schema can depend on."""
    columns = {
        (table, column): (nullable == "YES", default is not None or identity == "YES")
        for table, column, nullable, default, identity in conn.execute(
            text(
                "SELECT table_name, column_name, is_nullable, column_default, is_identity"
                " FROM information_schema.columns WHERE table_schema = 'public'"
                " AND table_name <> 'alembic_version'"
            )
        )
    }
    functions = {
        f"{name}({args})"
        for name, args in conn.execute(
            text(
                "SELECT p.proname, pg_get_function_identity_arguments(p.oid) FROM pg_proc p"
                " JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'"
            )
        )
    }
    return columns, functions


def breaking_changes(
    before: tuple[dict[tuple[str, str], tuple[bool, bool]], set[str]],
    after: tuple[dict[tuple[str, str], tuple[bool, bool]], set[str]],
) -> list[str]:
    """What the previous code may use that a migration took away or tightened."""
    old_columns, old_functions = before
    new_columns, new_functions = after
    old_tables = {table for table, _ in old_columns}
    problems = [
        f"drops or renames column {t}.{c}" for t, c in sorted(old_columns.keys() - new_columns.keys())
    ]
    problems += [f"drops or changes function {f}" for f in sorted(old_functions - new_functions)]
    for (table, column), (nullable, has_default) in sorted(new_columns.items()):
        previous = old_columns.get((table, column))
        if previous is not None and previous[0] and not nullable:
            problems.append(f"makes {table}.{column} NOT NULL")
        if previous is None and table in old_tables and not nullable and not has_default:
            problems.append(f"adds {table}.{column} NOT NULL without a default (old INSERTs fail)")
    return problems


def _revisions_in_order() -> list[Script]:
    return list(reversed(list(script_directory().walk_revisions())))


def test_every_migration_declares_whether_the_previous_release_runs_against_it() -> None:
    undeclared = [
        script.revision
        for script in _revisions_in_order()
        if not isinstance(getattr(script.module, "compatible_with_previous", None), bool)
    ]
    assert undeclared == []


def undeclared_breaks(
    postgres: PostgresServer, config: Config
) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """Apply each migration of `config` to a fresh database, one at a time, and return what each step
    declared compatible broke for the previous code, and what `schema_revisions` recorded."""
    engine = create_engine(postgres.create_database(f"contract_{uuid.uuid4().hex[:8]}"))
    undeclared: dict[str, list[str]] = {}
    with engine.connect() as conn:
        config.attributes["connection"] = conn
        for script in reversed(list(ScriptDirectory.from_config(config).walk_revisions())):
            before = schema_snapshot(conn)
            command.upgrade(config, script.revision)
            conn.commit()
            problems = breaking_changes(before, schema_snapshot(conn))
            if problems and script.module.compatible_with_previous:
                undeclared[script.revision] = problems
        recorded = recorded_revisions(conn)
    engine.dispose()
    return undeclared, recorded


def test_no_migration_breaks_the_previous_release_without_saying_so(postgres: PostgresServer) -> None:
    """Each step, applied to the schema of the one before: a step declared compatible keeps every
    column and function the previous code may use, and makes no INSERT of that code fail."""
    undeclared, recorded = undeclared_breaks(postgres, alembic_config())
    assert undeclared == {}
    # The migrations recorded every revision they applied, with its declared flag and parent.
    assert recorded == {
        s.revision: (s.down_revision, s.module.compatible_with_previous) for s in _revisions_in_order()
    }


RENAME_MIGRATION = '''"""A rename passed off as compatible."""
from alembic import op

revision = "bad_rename"
down_revision = "{down}"
branch_labels = None
depends_on = None
compatible_with_previous = {compatible}


def upgrade() -> None:
    op.alter_column("enhancement_jobs", "ticket_id", new_column_name="ticket_ref")


def downgrade() -> None:
    op.alter_column("enhancement_jobs", "ticket_ref", new_column_name="ticket_id")
'''


@pytest.mark.parametrize("compatible", [True, False])
def test_a_rename_declared_compatible_is_caught(
    postgres: PostgresServer, tmp_path: Path, compatible: bool
) -> None:
    """The same check over a real migration that renames a column the previous code reads: caught
    when it claims compatibility, accepted (and recorded as breaking) when it says so."""
    (tmp_path / "bad_rename.py").write_text(
        RENAME_MIGRATION.format(down=head_revision(), compatible=compatible)
    )
    config = alembic_config()
    versions = Path(script_directory().versions)
    config.set_main_option("version_locations", os.pathsep.join([str(versions), str(tmp_path)]))
    undeclared, recorded = undeclared_breaks(postgres, config)
    if compatible:
        assert undeclared == {
            "bad_rename": [
                "drops or renames column enhancement_jobs.ticket_id",
                "adds enhancement_jobs.ticket_ref NOT NULL without a default (old INSERTs fail)",
            ]
        }
    else:
        assert undeclared == {}
    assert recorded["bad_rename"] == (head_revision(), compatible)


def test_the_contract_check_catches_drops_renames_and_tightening() -> None:
    before = (
        {("jobs", "id"): (False, True), ("jobs", "note"): (True, False), ("jobs", "kind"): (True, False)},
        {"app_claim(integer)"},
    )
    after = (
        {
            ("jobs", "id"): (False, True),
            ("jobs", "note_text"): (True, False),  # renamed
            ("jobs", "kind"): (False, False),  # tightened
            ("jobs", "owner"): (False, False),  # new, NOT NULL, no default
            ("audit", "id"): (False, False),  # a new table may have anything
        },
        {"app_claim(integer, integer)"},
    )
    assert breaking_changes(before, after) == [
        "drops or renames column jobs.note",
        "drops or changes function app_claim(integer)",
        "makes jobs.kind NOT NULL",
        "adds jobs.owner NOT NULL without a default (old INSERTs fail)",
    ]
    assert breaking_changes(before, before) == []


@pytest.fixture(scope="module")
def newer_db(postgres: PostgresServer, stack: Stack) -> Iterator[tuple[dict[str, str], Engine]]:
    """A database migrated to this code's head, which the tests then move past it by hand."""
    database = f"newer_{uuid.uuid4().hex[:8]}"
    owner_url = postgres.create_database(database)
    env = {
        **stack.env,
        "DATABASE_OWNER_URL": owner_url,
        "DATABASE_URL": stack.env["DATABASE_URL"].rsplit("/", 1)[0] + f"/{database}",
    }
    assert run_cli(env, "migrate").returncode == 0
    engine = create_engine(owner_url)
    yield env, engine
    engine.dispose()


def _move_to(engine: Engine, revision: str, *, compatible: bool) -> None:
    """As if a newer release had applied `revision` on top of this code's head."""
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM schema_revisions WHERE revision LIKE '9%'"))
        conn.execute(
            text("INSERT INTO schema_revisions (revision, down_revision, compatible_with_previous)"
                 " VALUES (:r, :d, :c)"),
            {"r": revision, "d": head_revision(), "c": compatible},
        )  # fmt: skip
        conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})


def _state(engine: Engine) -> tuple[object, ...]:
    with engine.connect() as conn:
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        return version, schema_snapshot(conn)


@pytest.mark.parametrize(
    ("database_at", "compatible", "status"),
    [
        ("9001", True, "ahead_compatible"),
        ("9001", False, "ahead_incompatible"),
        ("9002", None, "unknown"),  # not recorded: no way to know what it changed
    ],
)
def test_readiness_and_the_migrations_job_against_a_newer_database(
    newer_db: tuple[dict[str, str], Engine], database_at: str, compatible: bool | None, status: str
) -> None:
    env, engine = newer_db
    try:
        if compatible is None:
            _move_to(engine, "9001", compatible=True)
            with engine.begin() as conn:
                conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": database_at})
        else:
            _move_to(engine, database_at, compatible=compatible)
        with engine.connect() as conn:
            verdict = assess(conn)
        assert verdict.status == status
        assert verdict.code_runs is (status == "ahead_compatible")

        before = _state(engine)
        result = run_cli(env, "migrate")  # this release's migrations Job, as a rollback runs it
        assert _state(engine) == before  # left unchanged either way
        if status == "ahead_compatible":
            assert result.returncode == 0, result.stderr
            assert "nothing to migrate, database left unchanged" in result.stdout
        else:
            assert result.returncode != 0
            message = " ".join(result.stderr.split())
            assert database_at in message and str(head_revision()) in message
            assert "nothing was changed" in message and "roll forward" in message
    finally:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": head_revision()})
            conn.execute(text("DELETE FROM schema_revisions WHERE revision LIKE '9%'"))


def test_a_database_behind_the_code_is_not_ready_until_migrated(
    newer_db: tuple[dict[str, str], Engine],
) -> None:
    _, engine = newer_db
    with engine.connect() as conn:
        assert assess(conn).status == "at_head" and assess(conn).code_runs
    previous = _revisions_in_order()[-2].revision
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": previous})
        with engine.connect() as conn:
            verdict = assess(conn)
        assert (verdict.status, verdict.code_runs) == ("behind", False)
    finally:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": head_revision()})
