"""One enhancement attempt: claim the job, fetch the ticket, ask the LLM, post one private note.

Idempotency, in order of defence:
1. `claim` lets only one worker hold a job at a time (lease) and skips finished jobs;
2. the enhancement is stored with `note_state=posting` *before* the POST, so a retry reuses it
   (no second LLM call) and knows a note may already exist;
3. a retry in `posting` state first looks for the note's marker on the ticket, and posts only if absent;
4. `note_state=posted` is stored right after the POST, with the job's success, in one transaction.

Time: an attempt's calls to ServiceDesk Plus and the LLM share one deadline (JOB_DEADLINE_SECONDS,
each call's own deadline clipped to it), enforced by the clients whatever the Celery pool; a spent
deadline is a transient failure like a timeout, so the job is retried later or, out of attempts,
`failed` with the reason. The lease taken by `claim` outlives the deadline (settings check it).
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from opentelemetry import trace
from sqlalchemy import Insert, func, insert, select, update
from sqlalchemy.exc import OperationalError

from app.clients import limits
from app.clients.errors import PermanentError, TransientError
from app.clients.llm import Enhancement
from app.clients.servicedesk import ServiceDeskClient, Ticket
from app.db import jobs
from app.db.models import EnhancementHistory, EnhancementJob, JobStatus, NoteState, TicketHistory
from app.log import get_logger
from app.metrics import ENHANCEMENT_DURATION, ENHANCEMENT_OUTCOMES
from app.secret_store import SecretUnavailableError
from app.tenants import TenantInfo
from app.worker.note import find_marked_note, render_note
from app.worker.runtime import Runtime

log = get_logger(__name__)
_tracer = trace.get_tracer(__name__)

RETRY_BASE_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class Done:
    status: str  # succeeded | failed | skipped


@dataclass(frozen=True, slots=True)
class RetryLater:
    countdown: float
    reason: str


Outcome = Done | RetryLater


@dataclass(frozen=True, slots=True)
class _Claimed:
    ticket_id: str
    note_key: uuid.UUID
    note_state: NoteState
    attempts: int
    tenant: TenantInfo  # read by the claim


@dataclass(slots=True)
class _Snapshot:
    """The ticket as this attempt fetched it, until a transaction writes it to `ticket_history`.

    Perf (docs/performance.md): the row rides with the attempt's next transaction (the one storing the
    enhancement, or the retry/failure bookkeeping) instead of a transaction of its own. Only a worker
    dying during the LLM call loses it, and the attempt after that fetches and records the ticket again.
    """

    values: dict[str, Any] | None = None

    def take(self, job_id: uuid.UUID, tenant_id: str, ticket: Ticket) -> None:
        self.values = {
            "tenant_id": tenant_id,
            "job_id": job_id,
            "ticket_id": ticket.id,
            "subject": ticket.subject,
            "status": ticket.status,
            "priority": ticket.priority,
            "snapshot": ticket.raw,
            # When it was fetched, not when the transaction carrying it began (after the LLM call).
            "fetched_at": datetime.now(UTC),
        }

    def rows(self) -> list[Insert]:
        return [] if self.values is None else [insert(TicketHistory).values(self.values)]

    def written(self) -> None:
        """Called once the transaction that carried the row has committed."""
        self.values = None


def backoff_seconds(attempt: int, retry_after: float | None, cap: float) -> float:
    """Exponential backoff with full jitter, never sooner than the server's `Retry-After`."""
    ceiling = min(cap, RETRY_BASE_SECONDS * 2 ** max(0, attempt - 1))
    delay = random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not cryptography
    return min(cap, max(delay, retry_after or 0.0))


def process_job(rt: Runtime, job_id: uuid.UUID, tenant_id: str) -> Outcome:
    structlog.contextvars.bind_contextvars(job_id=str(job_id), tenant_id=tenant_id)
    try:
        claimed = _claim(rt, job_id, tenant_id)
        if claimed is None:
            ENHANCEMENT_OUTCOMES.labels("skipped").inc()
            log.info("job_skipped", reason="finished or held by another worker")
            return Done("skipped")
        if isinstance(claimed, jobs.GaveUp):
            ENHANCEMENT_OUTCOMES.labels("failed").inc()
            log.warning("job_failed", reason=claimed.reason, attempts=claimed.attempts)
            return Done("failed")
        started = time.perf_counter()
        outcome = _attempt(rt, job_id, tenant_id, claimed)
        label = outcome.status if isinstance(outcome, Done) else "retry"
        ENHANCEMENT_DURATION.labels(label).observe(time.perf_counter() - started)
        ENHANCEMENT_OUTCOMES.labels(label).inc()
        return outcome
    finally:
        structlog.contextvars.unbind_contextvars("job_id", "tenant_id")


def postpone(rt: Runtime, job_id: uuid.UUID, tenant_id: str, seconds: float) -> None:
    """The job's task was put back unclaimed for `seconds` (its tenant holds its share of the threads):
    moving `enqueued_at` on keeps the sweeper from taking the waiting job for a lost one and sending a
    second copy. Best effort: a copy is harmless (`claim`), a failed put-back is not."""
    try:
        with rt.db.tenant(tenant_id) as session:
            session.execute(
                update(EnhancementJob)
                .where(EnhancementJob.id == job_id, EnhancementJob.status == JobStatus.QUEUED)
                .values(enqueued_at=func.now() + timedelta(seconds=seconds))
                .execution_options(synchronize_session=False)
            )
    except OperationalError:
        log.warning("job_postpone_not_recorded", job_id=str(job_id), tenant_id=tenant_id)


def _claim(rt: Runtime, job_id: uuid.UUID, tenant_id: str) -> _Claimed | jobs.GaveUp | None:
    # The lease outlives the hard time limit and so the job deadline: only a dead worker's job becomes
    # claimable again.
    lease = timedelta(seconds=rt.settings.job_lease_seconds)
    with rt.db.tenant(tenant_id) as session:
        claimed = jobs.claim(session, job_id, lease, max_attempts=rt.settings.task_max_retries + 1)
        if not isinstance(claimed, jobs.Claimed):
            return claimed
        # Perf (docs/performance.md): the tenant comes with the claim, in its transaction and RLS scope,
        # instead of a transaction of its own (TenantDirectory.get).
        job = claimed.job
        return _Claimed(
            job.ticket_id, job.note_key, job.note_state, job.attempts, TenantInfo.of(claimed.tenant)
        )


def _attempt(rt: Runtime, job_id: uuid.UUID, tenant_id: str, claimed: _Claimed) -> Outcome:
    snapshot = _Snapshot()
    try:
        with limits.deadline(rt.settings.job_deadline, "job deadline"):
            note_id = _enhance_and_post(rt, job_id, tenant_id, claimed, snapshot)
    except PermanentError as error:
        return _fail(rt, job_id, tenant_id, str(error), snapshot)
    except (TransientError, SecretUnavailableError, OperationalError) as error:
        reason = _reason(error)
        if claimed.attempts > rt.settings.task_max_retries:
            return _fail(
                rt, job_id, tenant_id, f"gave up after {claimed.attempts} attempts: {reason}", snapshot
            )
        retry_after = error.retry_after if isinstance(error, TransientError) else None
        countdown = backoff_seconds(claimed.attempts, retry_after, rt.settings.task_retry_backoff_max_seconds)
        with rt.db.tenant(tenant_id) as session:
            jobs.requeue(session, job_id, delay_seconds=countdown, reason=reason, with_rows=snapshot.rows())
        snapshot.written()
        log.warning(
            "job_retry_scheduled", reason=reason, attempt=claimed.attempts, countdown=round(countdown, 2)
        )
        return RetryLater(countdown, reason)
    except Exception as error:
        # Anything unclassified (a client bug, an upstream answer no client expected) used to escape the
        # task: the job stayed `running`, the sweeper re-sent it after every lease and attempts grew
        # without bound (found by tests/reliability: an LLM answering 200 with an HTML page). It now
        # ends `failed` with the reason; the job can be re-driven once the cause is understood.
        log.exception("job_unexpected_error", attempt=claimed.attempts)
        return _fail(rt, job_id, tenant_id, f"unexpected error: {type(error).__name__}", snapshot)
    log.info("job_succeeded", ticket_id=claimed.ticket_id, note_id=note_id, attempt=claimed.attempts)
    return Done("succeeded")


def _reason(error: Exception) -> str:
    if isinstance(error, OperationalError):
        return "database unavailable"
    return str(error)


def _fail(rt: Runtime, job_id: uuid.UUID, tenant_id: str, reason: str, snapshot: _Snapshot) -> Done:
    with rt.db.tenant(tenant_id) as session:
        jobs.finish(session, job_id, JobStatus.FAILED, reason, with_rows=snapshot.rows())
    snapshot.written()
    log.warning("job_failed", reason=reason)
    return Done("failed")


def _enhance_and_post(
    rt: Runtime, job_id: uuid.UUID, tenant_id: str, claimed: _Claimed, snapshot: _Snapshot
) -> str | None:
    tenant = claimed.tenant
    if not tenant.enabled:
        raise PermanentError("tenant is disabled")
    if claimed.note_state is NoteState.POSTED:
        _finish_posted(rt, job_id, tenant_id, None)
        return None
    secret = rt.tenants.secret(tenant)
    with rt.servicedesk(tenant, secret) as sdp:
        # Perf (docs/performance.md): a first attempt cannot find a stored enhancement (it is stored
        # with note_state=posting, by an attempt that claimed the job before), so skip that query; it
        # was the most expensive of a job's transactions.
        first_try = claimed.attempts == 1 and claimed.note_state is NoteState.NONE
        enhancement = None if first_try else _stored_enhancement(rt, job_id, tenant_id)
        if enhancement is None:
            ticket = sdp.get_ticket(claimed.ticket_id)
            snapshot.take(job_id, tenant_id, ticket)
            started = time.perf_counter()
            enhancement = rt.llm.enhance(ticket, rt.prompt)
            _store_enhancement(
                rt,
                job_id,
                tenant_id,
                claimed.ticket_id,
                enhancement=enhancement,
                started=started,
                snapshot=snapshot,
            )
        note_id = _post_once(sdp, claimed, enhancement, recovering=claimed.note_state is NoteState.POSTING)
    _finish_posted(rt, job_id, tenant_id, note_id)
    return note_id


def _post_once(
    sdp: ServiceDeskClient, claimed: _Claimed, enhancement: Enhancement, *, recovering: bool
) -> str | None:
    if recovering:
        existing = find_marked_note(list(sdp.list_notes(claimed.ticket_id)), claimed.note_key)
        if existing is not None:
            log.info("note_already_posted", ticket_id=claimed.ticket_id, note_id=existing)
            return existing
    # Its own span: the note is the job's one visible effect; its HTTP calls (and retries) nest inside.
    with _tracer.start_as_current_span("post note", attributes={"ai_agents.recovering": recovering}):
        return sdp.add_note(claimed.ticket_id, render_note(enhancement, claimed.note_key))


def _stored_enhancement(rt: Runtime, job_id: uuid.UUID, tenant_id: str) -> Enhancement | None:
    with rt.db.tenant(tenant_id) as session:
        row = session.scalars(
            select(EnhancementHistory)
            .where(EnhancementHistory.job_id == job_id)
            .order_by(EnhancementHistory.id)
        ).first()
        if row is None:
            return None
        return Enhancement(
            summary=row.summary, category=row.category, priority=row.priority, next_steps=row.next_steps
        )


def _store_enhancement(
    rt: Runtime,
    job_id: uuid.UUID,
    tenant_id: str,
    ticket_id: str,
    *,
    enhancement: Enhancement,
    started: float,
    snapshot: _Snapshot,
) -> None:
    """Persist the result and `posting` together, before the POST (see module docstring)."""
    stored = insert(EnhancementHistory).values(
        tenant_id=tenant_id,
        job_id=job_id,
        ticket_id=ticket_id,
        model=rt.llm.model,
        prompt_version=rt.prompt.version,
        summary=enhancement.summary,
        category=enhancement.category,
        priority=enhancement.priority,
        next_steps=enhancement.next_steps,
        duration_ms=int((time.perf_counter() - started) * 1000),
    )
    with rt.db.tenant(tenant_id) as session:
        jobs.mark_note_posting(session, job_id, with_rows=[stored, *snapshot.rows()])
    snapshot.written()


def _finish_posted(rt: Runtime, job_id: uuid.UUID, tenant_id: str, note_id: str | None) -> None:
    with rt.db.tenant(tenant_id) as session:
        jobs.finish_posted(session, job_id, note_id)
