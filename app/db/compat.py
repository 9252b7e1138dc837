"""The schema compatibility contract: which database revisions a release's code may run against.

Every migration states `compatible_with_previous`: True when the code of its down revision keeps
working against it (an *expand* step: new tables, new nullable or defaulted columns, new functions),
False when it drops, renames or tightens something that code uses (a *contract* step, shipped one
release after the code stopped using it). The migrations record each revision they apply, with that
flag, in `schema_revisions`, so a release can judge a database newer than its own head: it runs
against it when every revision between its head and the database's is an expand step.

Readiness (`/api/v1/ready`) and the migrations Job (`python -m app migrate`) both ask `assess`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, text

ALEMBIC_INI = Path(__file__).with_name("alembic.ini")
REVISIONS_TABLE = "schema_revisions"

Status = Literal["at_head", "behind", "ahead_compatible", "ahead_incompatible", "unknown", "empty"]


@dataclass(frozen=True)
class Verdict:
    status: Status
    database: str | None
    code: str | None
    detail: str

    @property
    def code_runs(self) -> bool:
        """The code at `code` can serve against this database."""
        return self.status in {"at_head", "ahead_compatible"}

    @property
    def newer(self) -> bool:
        return self.status in {"ahead_compatible", "ahead_incompatible", "unknown"}


def alembic_config() -> Config:
    return Config(str(ALEMBIC_INI))


@lru_cache(maxsize=1)
def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str | None:
    return script_directory().get_current_head()


def known_to_code(revision: str) -> bool:
    try:
        return script_directory().get_revision(revision) is not None
    except CommandError:
        return False


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def recorded_revisions(connection: Connection) -> dict[str, tuple[str | None, bool]]:
    """revision -> (down revision, compatible with previous), as the migrations recorded them."""
    if connection.execute(text("SELECT to_regclass(:t)"), {"t": REVISIONS_TABLE}).scalar() is None:
        return {}
    rows = connection.execute(
        text("SELECT revision, down_revision, compatible_with_previous FROM schema_revisions")
    ).all()
    return {row[0]: (row[1], bool(row[2])) for row in rows}


def assess(connection: Connection, head: str | None = None) -> Verdict:
    """Can the code whose head is `head` (default: this code's) run against this database?"""
    code = head if head is not None else head_revision()
    database = current_revision(connection)
    if database == code:
        return Verdict("at_head", database, code, f"schema at {database}, the code's head")
    if database is None:
        return Verdict("empty", database, code, f"schema not migrated, code expects {code}")
    if known_to_code(database):
        return Verdict("behind", database, code, f"schema at {database}, code expects {code}")
    return _judge_newer(database, code, recorded_revisions(connection))


def _judge_newer(database: str, code: str | None, recorded: dict[str, tuple[str | None, bool]]) -> Verdict:
    path: list[str] = []
    revision: str | None = database
    while revision != code:
        if revision is None or revision not in recorded or len(path) > len(recorded):
            return Verdict(
                "unknown",
                database,
                code,
                f"schema at {database}, which the code (head {code}) does not know and "
                f"{REVISIONS_TABLE} does not link back to {code}",
            )
        path.append(revision)
        revision = recorded[revision][0]
    breaking = [rev for rev in reversed(path) if not recorded[rev][1]]
    steps = ", ".join(reversed(path))
    if breaking:
        return Verdict(
            "ahead_incompatible",
            database,
            code,
            f"schema at {database}, newer than the code's head {code}; "
            f"{', '.join(breaking)} is not compatible with the previous release's code",
        )
    return Verdict(
        "ahead_compatible",
        database,
        code,
        f"schema at {database}, newer than the code's head {code} and compatible with it ({steps})",
    )
