"""Tenants: the database row plus the Secrets Manager secret holding webhook secrets and SDP credential."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import BaseModel, Field, ValidationError, field_validator
from sqlalchemy import select

from app.db.engine import Database
from app.db.models import AuthMode, Tenant
from app.secret_store import SecretNotFoundError, SecretStore, SecretUnavailableError
from app.settings import is_placeholder
from app.tenant_events import announce_tenant_changed

TENANT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
MIN_WEBHOOK_SECRET_LENGTH = 16


class TenantSecret(BaseModel):
    """The JSON stored in `<TENANT_SECRET_PREFIX><tenant_id>`. Newest webhook secret first."""

    webhook_secrets: list[str] = Field(min_length=1, max_length=5)
    servicedesk_credential: str = Field(min_length=1)

    @field_validator("webhook_secrets")
    @classmethod
    def _strong(cls, secrets: list[str]) -> list[str]:
        for secret in secrets:
            if len(secret) < MIN_WEBHOOK_SECRET_LENGTH or is_placeholder(secret):
                raise ValueError(f"webhook secrets must be at least {MIN_WEBHOOK_SECRET_LENGTH} characters")
        return secrets


@dataclass(frozen=True, slots=True)
class TenantInfo:
    id: str
    name: str
    servicedesk_base_url: str
    auth_mode: AuthMode
    secret_id: str
    enabled: bool

    @classmethod
    def of(cls, row: Tenant) -> TenantInfo:
        return cls(row.id, row.name, row.servicedesk_base_url, row.auth_mode, row.secret_id, row.enabled)


def valid_tenant_id(value: str | None) -> bool:
    return value is not None and bool(TENANT_ID.match(value))


def secret_name(prefix: str, tenant_id: str) -> str:
    return f"{prefix}{tenant_id}"


class TenantDirectory:
    """Look-ups the API and the worker make, as the app role, inside the tenant's own RLS scope."""

    def __init__(self, db: Database, store: SecretStore) -> None:
        self._db = db
        self._store = store

    def get(self, tenant_id: str) -> TenantInfo | None:
        if not valid_tenant_id(tenant_id):
            return None
        with self._db.tenant(tenant_id) as session:
            row = session.get(Tenant, tenant_id)
            return None if row is None else TenantInfo.of(row)

    def secret(self, tenant: TenantInfo, *, max_age: float | None = None) -> TenantSecret:
        try:
            return self._parse(tenant, self._store.get_string(tenant.secret_id, max_age=max_age))
        except SecretNotFoundError:
            raise SecretUnavailableError(f"tenant {tenant.id} has no secret") from None

    def cached_secret(self, tenant: TenantInfo, *, max_age: float | None = None) -> TenantSecret | None:
        """The secret if the cache holds a fresh copy, else None: no I/O (the webhook's event loop)."""
        raw = self._store.cached_string(tenant.secret_id, max_age=max_age)
        return None if raw is None else self._parse(tenant, raw)

    @staticmethod
    def _parse(tenant: TenantInfo, raw: str) -> TenantSecret:
        try:
            return TenantSecret.model_validate_json(raw)
        except ValidationError:
            raise SecretUnavailableError(f"tenant {tenant.id} secret is malformed") from None

    def secret_age(self, tenant: TenantInfo) -> float | None:
        return self._store.age(tenant.secret_id)


# Admin operations (CLI): they run as the owner, across tenants.


def add_tenant(
    db: Database,
    store: SecretStore,
    *,
    prefix: str,
    tenant_id: str,
    name: str,
    servicedesk_base_url: str,
    auth_mode: AuthMode,
    webhook_secret: str,
    credential: str,
) -> TenantInfo:
    if not valid_tenant_id(tenant_id):
        raise ValueError("tenant id must be 1-64 letters, digits, '-' or '_'")
    secret = TenantSecret(webhook_secrets=[webhook_secret], servicedesk_credential=credential)
    name_in_sm = secret_name(prefix, tenant_id)
    store.put_json(name_in_sm, secret.model_dump(), description=f"ai-agents tenant {tenant_id}")
    with db.unscoped() as session:
        row = session.get(Tenant, tenant_id) or Tenant(id=tenant_id)
        row.name = name
        row.servicedesk_base_url = servicedesk_base_url.rstrip("/")
        row.auth_mode = auth_mode
        row.secret_id = name_in_sm
        row.enabled = True
        session.add(row)
        session.flush()
        announce_tenant_changed(session, tenant_id)
        return TenantInfo.of(row)


def list_tenants(db: Database) -> list[TenantInfo]:
    with db.unscoped() as session:
        return [TenantInfo.of(row) for row in session.scalars(select(Tenant).order_by(Tenant.id))]


def rotate_secret(db: Database, store: SecretStore, tenant_id: str, new_secret: str, *, keep: int = 2) -> int:
    """Put `new_secret` first and keep the newest `keep` secrets, so ServiceDesk Plus can be switched
    over while deliveries signed with the previous secret are still accepted. Returns how many remain."""
    with db.unscoped() as session:
        row = session.get(Tenant, tenant_id)
        if row is None:
            raise LookupError(tenant_id)
        secret_id = row.secret_id
    current = TenantSecret.model_validate(store.get_json(secret_id, max_age=0))
    secrets = [new_secret, *[s for s in current.webhook_secrets if s != new_secret]][:keep]
    updated = TenantSecret(webhook_secrets=secrets, servicedesk_credential=current.servicedesk_credential)
    store.put_json(secret_id, updated.model_dump())
    with db.unscoped() as session:
        announce_tenant_changed(session, tenant_id)
    return len(secrets)


def set_enabled(db: Database, tenant_id: str, *, enabled: bool) -> None:
    with db.unscoped() as session:
        row = session.get(Tenant, tenant_id)
        if row is None:
            raise LookupError(tenant_id)
        row.enabled = enabled
        announce_tenant_changed(session, tenant_id)
