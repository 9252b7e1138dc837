"""Alembic is the only schema path; concurrent runners are serialised by the advisory lock."""

from __future__ import annotations

import subprocess
import sys
import uuid

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text

from app.db.migrate import head_revision
from app.db.models import Base
from harness.postgres import PostgresServer
from harness.processes import REPO, base_env
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
