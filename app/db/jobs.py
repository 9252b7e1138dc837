"""Job state transitions. Each function runs inside a tenant-scoped session owned by the caller."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import func, or_, text, update
from sqlalchemy.orm import Session

from app.db.models import EnhancementJob, JobStatus, NoteState


def get_job(session: Session, job_id: uuid.UUID) -> EnhancementJob | None:
    return session.get(EnhancementJob, job_id)


def claim(session: Session, job_id: uuid.UUID, lease: timedelta) -> EnhancementJob | None:
    """Take the job for this worker unless another one holds an unexpired lease or it is finished.

    This is what makes duplicate deliveries (sweeper re-enqueue, broker redelivery) harmless.
    """
    now = func.now()
    return session.execute(
        update(EnhancementJob)
        .where(
            EnhancementJob.id == job_id,
            or_(
                EnhancementJob.status == JobStatus.QUEUED,
                (EnhancementJob.status == JobStatus.RUNNING) & (EnhancementJob.lease_until < now),
            ),
        )
        .values(
            status=JobStatus.RUNNING,
            attempts=EnhancementJob.attempts + 1,
            lease_until=now + lease,
            updated_at=now,
        )
        .returning(EnhancementJob)
    ).scalar_one_or_none()


def mark_note_posting(session: Session, job_id: uuid.UUID) -> None:
    session.execute(
        update(EnhancementJob).where(EnhancementJob.id == job_id).values(note_state=NoteState.POSTING)
    )


def mark_note_posted(session: Session, job_id: uuid.UUID, note_id: str | None) -> None:
    session.execute(
        update(EnhancementJob)
        .where(EnhancementJob.id == job_id)
        .values(note_state=NoteState.POSTED, note_id=note_id)
    )


def finish(session: Session, job_id: uuid.UUID, status: JobStatus, error: str | None = None) -> None:
    session.execute(
        update(EnhancementJob)
        .where(EnhancementJob.id == job_id)
        .values(status=status, error=error, lease_until=None, finished_at=func.now(), updated_at=func.now())
    )


def requeue(session: Session, job_id: uuid.UUID, *, delay_seconds: float, reason: str) -> None:
    """Back to `queued` while a Celery retry is pending; `enqueued_at` in the future keeps the sweeper
    from re-sending it before the retry is even due."""
    session.execute(
        update(EnhancementJob)
        .where(EnhancementJob.id == job_id)
        .values(
            status=JobStatus.QUEUED,
            error=reason,
            lease_until=None,
            enqueued_at=func.now() + timedelta(seconds=delay_seconds),
            updated_at=func.now(),
        )
    )


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
