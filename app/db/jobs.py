"""Job state transitions. Each function runs inside a tenant-scoped session owned by the caller."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import ColumnElement, Insert, Update, case, func, or_, text, update
from sqlalchemy.orm import Session

from app.db.models import EnhancementHistory, EnhancementJob, JobStatus, NoteState, Tenant


def get_job(session: Session, job_id: uuid.UUID) -> EnhancementJob | None:
    return session.get(EnhancementJob, job_id)


@dataclass(frozen=True, slots=True)
class Claimed:
    job: EnhancementJob
    tenant: Tenant


@dataclass(frozen=True, slots=True)
class GaveUp:
    """`claim` refused the job for good: it is `failed` with `reason`."""

    attempts: int
    reason: str


def claim(
    session: Session, job_id: uuid.UUID, lease: timedelta, *, max_attempts: int
) -> Claimed | GaveUp | None:
    """Take the job for this worker unless another one holds an unexpired lease or it is finished.

    This is what makes duplicate deliveries (sweeper re-enqueue, broker redelivery) harmless. A job that
    has had `max_attempts` already is not run again but failed: retries are bounded where an attempt
    ends, but an attempt that kills its worker (segfault, OOM) never ends, and its job would otherwise
    be re-claimed after every lease, forever.

    The job's tenant row comes back with it (UPDATE ... FROM; the foreign key guarantees it exists):
    the worker needs it next, and reading it separately cost a round trip (docs/performance.md).
    """
    now = func.now()
    claimed = session.execute(
        update(EnhancementJob)
        .where(
            EnhancementJob.id == job_id,
            EnhancementJob.tenant_id == Tenant.id,
            _claimable(),
            EnhancementJob.attempts < max_attempts,
        )
        .values(
            status=JobStatus.RUNNING,
            attempts=EnhancementJob.attempts + 1,
            lease_until=now + lease,
            updated_at=now,
        )
        .returning(EnhancementJob, Tenant)
        .execution_options(synchronize_session=False)
    ).one_or_none()
    if claimed is not None:
        return Claimed(*claimed.tuple())
    # Held, finished, or out of attempts: only the last one is failed here (a duplicate delivery pays
    # this one statement more, a first claim nothing). The attempts test is repeated: the job may have
    # become claimable since the statement above (another worker's requeue committed in between).
    gave_up = session.execute(
        update(EnhancementJob)
        .where(EnhancementJob.id == job_id, _claimable(), EnhancementJob.attempts >= max_attempts)
        .values(
            status=JobStatus.FAILED,
            error=_gave_up_reason(),
            lease_until=None,
            finished_at=now,
            updated_at=now,
        )
        .returning(EnhancementJob.attempts, EnhancementJob.error)
        .execution_options(synchronize_session=False)
    ).one_or_none()
    return None if gave_up is None else GaveUp(gave_up.attempts, str(gave_up.error))


def _claimable() -> ColumnElement[bool]:
    return or_(
        EnhancementJob.status == JobStatus.QUEUED,
        (EnhancementJob.status == JobStatus.RUNNING) & (EnhancementJob.lease_until < func.now()),
    )


def _gave_up_reason() -> ColumnElement[str]:
    # Evaluated on the old row: a `running` job's last attempt never finished (its worker died); a
    # `queued` one (the limit was lowered meanwhile) keeps the reason of its last retry.
    last = case(
        (EnhancementJob.status == JobStatus.RUNNING, "the last one never finished (its worker was lost)"),
        else_=func.coalesce(EnhancementJob.error, "no attempts left"),
    )
    return func.concat("gave up after ", EnhancementJob.attempts, " attempts: ", last)


def mark_note_posting(session: Session, job_id: uuid.UUID, *, with_rows: Sequence[Insert] = ()) -> None:
    """`posting`, committed before the POST, together with `with_rows` (the stored enhancement)."""
    _execute(
        session,
        update(EnhancementJob).where(EnhancementJob.id == job_id).values(note_state=NoteState.POSTING),
        with_rows,
    )


def finish_posted(session: Session, job_id: uuid.UUID, note_id: str | None) -> None:
    """The note is on the ticket: the job's success, its note and the stored enhancement's note id in
    one statement. `note_id` None (the note was found earlier, or ServiceDesk Plus returned no id)
    keeps the stored ids."""
    now = func.now()
    values: dict[str, object] = {
        "note_state": NoteState.POSTED,
        "status": JobStatus.SUCCEEDED,
        "error": None,
        "lease_until": None,
        "finished_at": now,
        "updated_at": now,
    }
    also: list[Update] = []
    if note_id is not None:
        values["note_id"] = note_id
        also.append(
            update(EnhancementHistory).where(EnhancementHistory.job_id == job_id).values(note_id=note_id)
        )
    _execute(session, update(EnhancementJob).where(EnhancementJob.id == job_id).values(values), also)


def finish(
    session: Session,
    job_id: uuid.UUID,
    status: JobStatus,
    error: str | None = None,
    *,
    with_rows: Sequence[Insert] = (),
) -> None:
    now = func.now()
    _execute(
        session,
        update(EnhancementJob)
        .where(EnhancementJob.id == job_id)
        .values(status=status, error=error, lease_until=None, finished_at=now, updated_at=now),
        with_rows,
    )


def requeue(
    session: Session,
    job_id: uuid.UUID,
    *,
    delay_seconds: float,
    reason: str,
    with_rows: Sequence[Insert] = (),
) -> None:
    """Back to `queued` while a Celery retry is pending; `enqueued_at` in the future keeps the sweeper
    from re-sending it before the retry is even due."""
    _execute(
        session,
        update(EnhancementJob)
        .where(EnhancementJob.id == job_id)
        .values(
            status=JobStatus.QUEUED,
            error=reason,
            lease_until=None,
            enqueued_at=func.now() + timedelta(seconds=delay_seconds),
            updated_at=func.now(),
        ),
        with_rows,
    )


def _execute(session: Session, statement: Update, with_rows: Sequence[Insert | Update]) -> None:
    """`statement` and `with_rows` in one round trip, as data-modifying CTEs (PostgreSQL runs those
    even though nothing refers to them). Perf (docs/performance.md): a job's bookkeeping used to be a
    statement per row, each one a round trip and a GIL hand-over in the worker."""
    for n, row in enumerate(with_rows):
        statement = statement.add_cte(row.cte(f"row_{n}"))
    # The session holds no job objects to keep in sync: skip the ORM's evaluation of the criteria.
    session.execute(statement.execution_options(synchronize_session=False))


def claim_stale(session: Session, *, stale_after_seconds: int, limit: int) -> list[tuple[uuid.UUID, str]]:
    """Jobs a lost publish or a dead worker left behind, across tenants (SECURITY DEFINER helper;
    FOR UPDATE SKIP LOCKED inside it keeps N concurrent sweepers from picking the same job)."""
    rows = session.execute(
        text("SELECT job_id, tenant_id FROM app_claim_stale_jobs(:stale, :limit)"),
        {"stale": stale_after_seconds, "limit": limit},
    )
    return [(row[0], str(row[1])) for row in rows]


def status_counts(session: Session) -> dict[str, int]:
    rows = session.execute(text("SELECT status, count FROM app_job_status_counts()"))
    return {str(status): int(count) for status, count in rows}
