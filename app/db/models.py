"""Typed SQLAlchemy models. The schema itself changes only through Alembic (app/db/alembic)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Enum,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names so migrations can refer to them.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class AuthMode(StrEnum):
    AUTHTOKEN = "authtoken"  # on-premises: `authtoken: <key>` header
    OAUTH = "oauth"  # cloud: `Authorization: Zoho-oauthtoken <token>`


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class NoteState(StrEnum):
    NONE = "none"
    POSTING = "posting"  # set before the POST: a crash after it must not lead to a second note
    POSTED = "posted"


def _enum(kind: type[StrEnum], name: str) -> Enum:
    return Enum(
        kind,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda members: [member.value for member in members],
    )


def _created() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now())


class Tenant(Base):
    __tablename__ = "tenants"
    __table_args__ = (
        # Somewhere to read its secrets from: the combined secret, or both split ones (migration 0005).
        CheckConstraint(
            "secret_id IS NOT NULL OR (webhook_secret_id IS NOT NULL AND credential_secret_id IS NOT NULL)",
            name="secrets",
        ),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    servicedesk_base_url: Mapped[str] = mapped_column(String(500))
    auth_mode: Mapped[AuthMode] = mapped_column(_enum(AuthMode, "auth_mode"))
    # The combined secret of the old layout (webhook secrets and credential in one) while it is kept.
    secret_id: Mapped[str | None] = mapped_column(String(512))
    # The split layout: webhook secrets (the API reads them), ServiceDesk Plus credential (the worker).
    webhook_secret_id: Mapped[str | None] = mapped_column(String(512))
    credential_secret_id: Mapped[str | None] = mapped_column(String(512))
    enabled: Mapped[bool] = mapped_column(server_default=text("true"))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class EnhancementJob(Base):
    __tablename__ = "enhancement_jobs"
    __table_args__ = (
        UniqueConstraint("tenant_id", "dedupe_key", name="uq_enhancement_jobs_delivery"),
        Index("uq_enhancement_jobs_content", "tenant_id", "ticket_id", "body_sha256", unique=True),
        # The sweeper scans only unfinished jobs.
        Index(
            "ix_enhancement_jobs_unfinished",
            "enqueued_at",
            postgresql_where=text("status IN ('queued', 'running')"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    ticket_id: Mapped[str] = mapped_column(String(64))
    dedupe_key: Mapped[str] = mapped_column(String(200))
    body_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[JobStatus] = mapped_column(_enum(JobStatus, "job_status"), default=JobStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    error: Mapped[str | None] = mapped_column(Text)
    note_key: Mapped[uuid.UUID] = mapped_column(Uuid, default=uuid.uuid4)
    note_state: Mapped[NoteState] = mapped_column(_enum(NoteState, "note_state"), default=NoteState.NONE)
    note_id: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    enqueued_at: Mapped[datetime] = _created()
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class EnhancementHistory(Base):
    __tablename__ = "enhancement_history"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("enhancement_jobs.id"), index=True)
    ticket_id: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(200))
    prompt_version: Mapped[str] = mapped_column(String(32))
    summary: Mapped[str] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(200))
    priority: Mapped[str | None] = mapped_column(String(50))
    next_steps: Mapped[list[Any]] = mapped_column(JSONB)
    note_id: Mapped[str | None] = mapped_column(String(64))
    duration_ms: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = _created()


class TicketHistory(Base):
    __tablename__ = "ticket_history"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("enhancement_jobs.id"), index=True)
    ticket_id: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(Text)
    status: Mapped[str | None] = mapped_column(String(100))
    priority: Mapped[str | None] = mapped_column(String(100))
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSONB)
    fetched_at: Mapped[datetime] = _created()


class SchemaRevision(Base):
    """Each revision applied to this database and whether the previous release's code runs against it
    (written by the migrations themselves; app/db/compat.py reads it)."""

    __tablename__ = "schema_revisions"

    revision: Mapped[str] = mapped_column(String(32), primary_key=True)
    down_revision: Mapped[str | None] = mapped_column(String(32))
    compatible_with_previous: Mapped[bool] = mapped_column()
    applied_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


TENANT_TABLES = ("tenants", "enhancement_jobs", "enhancement_history", "ticket_history")
