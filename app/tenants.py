"""Tenants: the database row and the tenant's two Secrets Manager secrets.

Each secret is read by one role only (components/identity.py grants exactly these patterns):

- `<TENANT_SECRET_PREFIX>webhook/<tenant>` = `{"webhook_secrets": [newest, ...]}`: the API checks
  signatures with it. The API faces the internet, so it never holds a ServiceDesk Plus credential.
- `<TENANT_SECRET_PREFIX>servicedesk/<tenant>` = `{"servicedesk_credential": "..."}`: the worker calls
  ServiceDesk Plus with it, and never holds a webhook secret. A cloud tenant's holds its OAuth refresh
  token there and the client it was issued to in `oauth` (app/clients/zoho_oauth.py); the key is left
  out when unused, so a release that predates it still reads the secret.

The row names both (`webhook_secret_id`, `credential_secret_id`). Tenants created before this layout
have one combined secret `<prefix><tenant>` holding both, named by `secret_id`; every read falls back to
it while the row names no split secret, and `python -m app tenants split-secrets` moves tenants over
(docs/runbook.md, "Split tenant secrets"). While a combined secret is kept it is the source of truth:
the CLI reads it, writes it first and copies it to the split secrets, so the previous release (after a
rollback) sees every change. The fallback can go once every stack's tenants are split with the combined
secret deleted (`tenants list` shows `split` for all), and `secret_id` in the release after that.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import socket
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import SplitResult, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import select

from app.clients.zoho_oauth import OAuthClient, accounts_url_problem
from app.db.engine import Database
from app.db.models import AuthMode, Tenant
from app.secret_store import SecretNotFoundError, SecretStore, SecretUnavailableError
from app.settings import is_placeholder
from app.tenant_events import announce_tenant_changed

TENANT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
MIN_WEBHOOK_SECRET_LENGTH = 16
MAX_WEBHOOK_SECRETS = 5
# Secrets Manager name folders under TENANT_SECRET_PREFIX; the IAM patterns in components/identity.py
# name the same two (a test holds them together).
WEBHOOK_FOLDER = "webhook/"
CREDENTIAL_FOLDER = "servicedesk/"


class WebhookSecrets(BaseModel):
    """The API's secret. Newest first; more than one only between a rotation and its retirement."""

    model_config = ConfigDict(extra="forbid")

    webhook_secrets: list[str] = Field(min_length=1, max_length=MAX_WEBHOOK_SECRETS)

    @field_validator("webhook_secrets")
    @classmethod
    def _strong(cls, values: list[str]) -> list[str]:
        for value in values:
            if len(value) < MIN_WEBHOOK_SECRET_LENGTH or is_placeholder(value):
                raise ValueError(f"webhook secrets must be at least {MIN_WEBHOOK_SECRET_LENGTH} characters")
        return values


class ServiceDeskSecret(BaseModel):
    """The worker's secret: the on-premises auth token; for a cloud tenant the OAuth refresh token and
    its client (`oauth`), or a static access token (which expires within the hour) without them."""

    model_config = ConfigDict(extra="forbid")

    servicedesk_credential: str = Field(min_length=1)
    oauth: OAuthClient | None = None


class TenantSecret(WebhookSecrets, ServiceDeskSecret):
    """Both: the combined secret of the old layout, and the whole of what the admin CLI manages."""

    def webhook_part(self) -> WebhookSecrets:
        return WebhookSecrets(webhook_secrets=self.webhook_secrets)

    def credential_part(self) -> ServiceDeskSecret:
        return ServiceDeskSecret(servicedesk_credential=self.servicedesk_credential, oauth=self.oauth)


@dataclass(frozen=True, slots=True)
class TenantInfo:
    id: str
    name: str
    servicedesk_base_url: str
    auth_mode: AuthMode
    secret_id: str | None  # the combined secret of the old layout, while it is kept
    enabled: bool
    webhook_secret_id: str | None = None
    credential_secret_id: str | None = None

    @classmethod
    def of(cls, row: Tenant) -> TenantInfo:
        return cls(
            row.id,
            row.name,
            row.servicedesk_base_url,
            row.auth_mode,
            row.secret_id,
            row.enabled,
            row.webhook_secret_id,
            row.credential_secret_id,
        )

    @property
    def split(self) -> bool:
        return self.webhook_secret_id is not None and self.credential_secret_id is not None

    @property
    def layout(self) -> str:
        if not self.split:
            return "combined"
        return "split" if self.secret_id is None else "split, combined kept"


def valid_tenant_id(value: str | None) -> bool:
    return value is not None and bool(TENANT_ID.match(value))


def secret_name(prefix: str, tenant_id: str) -> str:
    """The combined secret of the old layout."""
    return f"{prefix}{tenant_id}"


def webhook_secret_name(prefix: str, tenant_id: str) -> str:
    return f"{prefix}{WEBHOOK_FOLDER}{tenant_id}"


def credential_secret_name(prefix: str, tenant_id: str) -> str:
    return f"{prefix}{CREDENTIAL_FOLDER}{tenant_id}"


def webhook_secret_ids(prefix: str, tenant_id: str, known: TenantInfo | None = None) -> set[str]:
    """Every name a process may hold a tenant's webhook secrets under: what to forget when it changes."""
    names = {secret_name(prefix, tenant_id), webhook_secret_name(prefix, tenant_id)}
    if known is not None:
        names |= {name for name in (known.secret_id, known.webhook_secret_id) if name}
    return names


def new_webhook_secret() -> str:
    return secrets.token_urlsafe(32)


Model = TypeVar("Model", bound=BaseModel)


def _parse(model: type[Model], tenant_id: str, raw: str) -> Model:
    try:
        return model.model_validate_json(raw)
    except ValidationError:
        raise SecretUnavailableError(f"tenant {tenant_id} secret is malformed") from None


class TenantDirectory:
    """Look-ups the API and the worker make, as the app role, inside the tenant's own RLS scope. The API
    reads webhook secrets only, the worker the credential only: each role may read nothing else."""

    def __init__(self, db: Database, store: SecretStore) -> None:
        self._db = db
        self._store = store

    def get(self, tenant_id: str) -> TenantInfo | None:
        if not valid_tenant_id(tenant_id):
            return None
        with self._db.tenant(tenant_id) as session:
            row = session.get(Tenant, tenant_id)
            return None if row is None else TenantInfo.of(row)

    # The API's reads.

    @staticmethod
    def _webhook_source(tenant: TenantInfo) -> tuple[str, type[WebhookSecrets]]:
        if tenant.webhook_secret_id:
            return tenant.webhook_secret_id, WebhookSecrets
        if tenant.secret_id:
            return tenant.secret_id, TenantSecret  # not split yet
        raise SecretUnavailableError(f"tenant {tenant.id} names no webhook secret")

    def webhook_secrets(self, tenant: TenantInfo, *, max_age: float | None = None) -> list[str]:
        secret_id, model = self._webhook_source(tenant)
        try:
            raw = self._store.get_string(secret_id, max_age=max_age)
        except SecretNotFoundError:
            raise SecretUnavailableError(f"tenant {tenant.id} has no webhook secret") from None
        return _parse(model, tenant.id, raw).webhook_secrets

    def cached_webhook_secrets(self, tenant: TenantInfo, *, max_age: float | None = None) -> list[str] | None:
        """The webhook secrets if the cache holds a fresh copy, else None: no I/O (the event loop)."""
        secret_id, model = self._webhook_source(tenant)
        raw = self._store.cached_string(secret_id, max_age=max_age)
        return None if raw is None else _parse(model, tenant.id, raw).webhook_secrets

    def webhook_secrets_age(self, tenant: TenantInfo) -> float | None:
        return self._store.age(self._webhook_source(tenant)[0])

    # The worker's read.

    def secret(self, tenant: TenantInfo, *, max_age: float | None = None) -> ServiceDeskSecret:
        """The tenant's ServiceDesk Plus credential (never its webhook secrets)."""
        if tenant.credential_secret_id:
            secret_id, model = tenant.credential_secret_id, ServiceDeskSecret
        elif tenant.secret_id:
            secret_id, model = tenant.secret_id, TenantSecret  # not split yet
        else:
            raise SecretUnavailableError(f"tenant {tenant.id} names no credential secret")
        try:
            raw = self._store.get_string(secret_id, max_age=max_age)
        except SecretNotFoundError:
            raise SecretUnavailableError(f"tenant {tenant.id} has no credential secret") from None
        parsed = _parse(model, tenant.id, raw)
        return parsed.credential_part() if isinstance(parsed, TenantSecret) else parsed

    def servicedesk_credential(self, tenant: TenantInfo) -> str:
        return self.secret(tenant).servicedesk_credential


# The ServiceDesk Plus URL: the worker sends the tenant's credential there.

_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_NUMERIC_HOST = re.compile(r"^[0-9a-fx.]+$")


def _literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host names literally, including the short and numeric IPv4 forms (`127.1`,
    `2130706433`, `0x7f.0.0.1`) that inet_aton, and so the resolver, accept."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if not _NUMERIC_HOST.match(host):
            return None
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _address_problem(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    kinds = (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private and not (address.is_unspecified or address.is_reserved)),
    )
    for kind, applies in kinds:
        if applies:
            return f"must name a public host: {address} is a {kind} address"
    if not address.is_global:
        return f"must name a public host: {address} is not a public address"
    return None


def _is_loopback(host: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> bool:
    if address is not None:
        return address.is_loopback
    return host == "localhost" or host.endswith(".localhost")


def _port_ok(parts: SplitResult) -> bool:
    try:
        port = parts.port
    except ValueError:
        return False
    return port != 0


def _form_problem(url: str) -> str | None:
    """What is wrong with the URL's form, whatever host it names."""
    if not url.lower().startswith(("https://", "http://")):
        return "must start with https://"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "is not a valid URL"
    rules = (
        (
            any(char.isspace() or ord(char) < 32 or ord(char) == 127 or char == "\\" for char in url),
            "must not contain spaces, backslashes or control characters",
        ),
        ("@" in parts.netloc, "must not contain credentials before the host (user@)"),
        ("#" in url, "must not contain a fragment (#...)"),
        ("?" in url, "must not contain a query string (?...)"),
        (not _port_ok(parts), "has an invalid port"),
        (not (parts.hostname or "").rstrip("."), "has no host"),
    )
    return next((message for broken, message in rules if broken), None)


def servicedesk_url_problem(url: str, *, allow_loopback: bool) -> str | None:
    """Why `url` may not be a tenant's ServiceDesk Plus base URL, or None: https:// to a host name or a
    public address, no credentials, query or fragment. Loopback (http or https) only with
    `allow_loopback` (SDP_ALLOW_LOOPBACK, local runs and tests). Names are not resolved here: where a
    name points can change, so the client checks the address it connects to."""
    if problem := _form_problem(url):
        return problem
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".")
    address = _literal_address(host)
    if address is None and (len(host) > 253 or not all(map(_HOST_LABEL.match, host.split(".")))):
        return "has an invalid host name"
    if _is_loopback(host, address):
        if allow_loopback:
            return None
        shown = host if address is None else str(address)
        return f"must name a public host: {shown} is a loopback address (SDP_ALLOW_LOOPBACK=true allows it locally)"
    if parts.scheme != "https":
        return "must start with https://" + (" (http:// only to loopback)" if allow_loopback else "")
    return None if address is None else _address_problem(address)


# Admin operations (CLI): they run as the owner, across tenants.


def _load_row(db: Database, tenant_id: str) -> TenantInfo:
    with db.unscoped() as session:
        row = session.get(Tenant, tenant_id)
        if row is None:
            raise LookupError(tenant_id)
        return TenantInfo.of(row)


def _read(store: SecretStore, model: type[Model], tenant_id: str, secret_id: str) -> Model:
    return _parse(model, tenant_id, store.get_string(secret_id, max_age=0))


def current_secret(store: SecretStore, tenant: TenantInfo) -> TenantSecret:
    """What the tenant's secrets hold now: the combined secret while it is kept (the source of truth),
    else the two split ones."""
    if tenant.secret_id:
        try:
            return _read(store, TenantSecret, tenant.id, tenant.secret_id)
        except SecretNotFoundError:
            if not tenant.split:
                raise SecretUnavailableError(f"tenant {tenant.id} has no secret") from None
    if tenant.webhook_secret_id is None or tenant.credential_secret_id is None:
        raise SecretUnavailableError(f"tenant {tenant.id} names no secret")
    try:
        webhook = _read(store, WebhookSecrets, tenant.id, tenant.webhook_secret_id)
        credential = _read(store, ServiceDeskSecret, tenant.id, tenant.credential_secret_id)
    except SecretNotFoundError as missing:
        raise SecretUnavailableError(f"tenant {tenant.id}: secret {missing} is missing") from None
    return TenantSecret(
        webhook_secrets=webhook.webhook_secrets,
        servicedesk_credential=credential.servicedesk_credential,
        oauth=credential.oauth,
    )


def _description(tenant_id: str, what: str) -> str:
    return f"ai-agents tenant {tenant_id}: {what}"


def _write(store: SecretStore, tenant: TenantInfo, before: TenantSecret | None, after: TenantSecret) -> None:
    """Write what the tenant's row names: the combined secret first while it is kept, then each split
    secret that changed (both, while the combined secret is kept: they are its copy)."""
    kept = tenant.secret_id is not None
    if tenant.secret_id:
        store.put_json(tenant.secret_id, after.model_dump(exclude_none=True))
    if tenant.webhook_secret_id and (
        kept or before is None or before.webhook_secrets != after.webhook_secrets
    ):
        store.put_json(
            tenant.webhook_secret_id,
            after.webhook_part().model_dump(),
            description=_description(tenant.id, "webhook secrets (read by the API)"),
        )
    if tenant.credential_secret_id and (
        kept or before is None or before.credential_part() != after.credential_part()
    ):
        store.put_json(
            tenant.credential_secret_id,
            after.credential_part().model_dump(exclude_none=True),
            description=_description(tenant.id, "ServiceDesk Plus credential (read by the worker)"),
        )


def _announce(db: Database, tenant_id: str) -> None:
    with db.unscoped() as session:
        announce_tenant_changed(session, tenant_id)


@dataclass(frozen=True, slots=True)
class Saved:
    tenant: TenantInfo
    created: bool
    webhook_secrets: int  # how many are accepted now
    generated_secret: str | None  # a new tenant's webhook secret when none was given: show it once


def add_tenant(
    db: Database,
    store: SecretStore,
    *,
    prefix: str,
    tenant_id: str,
    name: str,
    servicedesk_base_url: str,
    auth_mode: AuthMode,
    webhook_secret: str | None,
    credential: str,
    allow_loopback: bool = False,
    oauth: OAuthClient | None = None,
) -> Saved:
    """Create a tenant (split layout; its webhook secret generated unless given), or update one: name,
    URL, auth mode and credential (with `oauth`, the credential is the refresh token issued to that
    client). An update keeps the webhook secrets ServiceDesk Plus signs with, unless `webhook_secret`
    replaces them."""
    if not valid_tenant_id(tenant_id):
        raise ValueError("tenant id must be 1-64 letters, digits, '-' or '_'")
    if problem := servicedesk_url_problem(servicedesk_base_url, allow_loopback=allow_loopback):
        raise ValueError(f"invalid --servicedesk-url: {problem}")
    if oauth is not None:
        if auth_mode is not AuthMode.OAUTH:
            raise ValueError("an OAuth client goes with --auth-mode oauth only")
        if problem := accounts_url_problem(oauth.accounts_url, allow_loopback=allow_loopback):
            raise ValueError(f"invalid --oauth-accounts-url: {problem}")
    with db.unscoped() as session:
        row = session.get(Tenant, tenant_id)
        existing = None if row is None else TenantInfo.of(row)
    generated = None
    if existing is None:
        if webhook_secret is None:
            webhook_secret = generated = new_webhook_secret()
        target = TenantInfo(
            tenant_id,
            name,
            servicedesk_base_url,
            auth_mode,
            None,
            True,
            webhook_secret_name(prefix, tenant_id),
            credential_secret_name(prefix, tenant_id),
        )
        before = None
        after = TenantSecret(webhook_secrets=[webhook_secret], servicedesk_credential=credential, oauth=oauth)
    else:
        target = existing
        before = current_secret(store, existing)
        secrets_now = before.webhook_secrets if webhook_secret is None else [webhook_secret]
        after = TenantSecret(webhook_secrets=secrets_now, servicedesk_credential=credential, oauth=oauth)
    _write(store, target, before, after)
    with db.unscoped() as session:
        row = session.get(Tenant, tenant_id) or Tenant(id=tenant_id)
        row.name = name
        row.servicedesk_base_url = servicedesk_base_url.rstrip("/")
        row.auth_mode = auth_mode
        row.secret_id = target.secret_id
        row.webhook_secret_id = target.webhook_secret_id
        row.credential_secret_id = target.credential_secret_id
        row.enabled = True
        session.add(row)
        session.flush()
        announce_tenant_changed(session, tenant_id)
        return Saved(TenantInfo.of(row), existing is None, len(after.webhook_secrets), generated)


def list_tenants(db: Database) -> list[TenantInfo]:
    with db.unscoped() as session:
        return [TenantInfo.of(row) for row in session.scalars(select(Tenant).order_by(Tenant.id))]


def rotate_secret(db: Database, store: SecretStore, tenant_id: str, new_secret: str, *, keep: int = 2) -> int:
    """Put `new_secret` first and keep the newest `keep` secrets (at least 2), so ServiceDesk Plus can be
    switched over while deliveries signed with the previous secret are still accepted. Returns how
    many are accepted now."""
    if not 2 <= keep <= MAX_WEBHOOK_SECRETS:
        raise ValueError(f"keep must be 2 to {MAX_WEBHOOK_SECRETS}")
    tenant = _load_row(db, tenant_id)
    current = current_secret(store, tenant)
    kept = [new_secret, *[s for s in current.webhook_secrets if s != new_secret]][:keep]
    updated = current.model_copy(update={"webhook_secrets": kept})  # the credential part unchanged
    _write(store, tenant, current, updated)
    _announce(db, tenant_id)
    return len(kept)


def retire_secrets(db: Database, store: SecretStore, tenant_id: str) -> int:
    """Drop every webhook secret but the newest (the one the last rotation added), once ServiceDesk Plus
    signs with it. Never generates one. Returns how many were dropped (0: nothing to retire)."""
    tenant = _load_row(db, tenant_id)
    current = current_secret(store, tenant)
    retired = len(current.webhook_secrets) - 1
    if retired == 0:
        return 0
    updated = current.model_copy(update={"webhook_secrets": current.webhook_secrets[:1]})
    _write(store, tenant, current, updated)
    _announce(db, tenant_id)
    return retired


def set_enabled(db: Database, tenant_id: str, *, enabled: bool) -> None:
    with db.unscoped() as session:
        row = session.get(Tenant, tenant_id)
        if row is None:
            raise LookupError(tenant_id)
        row.enabled = enabled
        announce_tenant_changed(session, tenant_id)


# The move from one combined secret per tenant to two.


class SplitError(Exception):
    """A tenant could not be split; nothing about it changed beyond what the message says."""


def _same(store: SecretStore, tenant_id: str, secret_id: str, expected: BaseModel) -> bool:
    try:
        return _read(store, type(expected), tenant_id, secret_id) == expected
    except SecretNotFoundError:
        return False


def split_secrets(
    db: Database,
    store: SecretStore,
    *,
    prefix: str,
    tenant_id: str,
    delete_combined: bool = False,
    recovery_days: int = 30,
) -> str:
    """Copy the tenant's combined secret into its two split secrets, read them back, record them on the
    row and announce it; with `delete_combined`, then schedule the combined secret's deletion (it can
    be restored for `recovery_days`) and forget it. Idempotent. Returns what it did, for the operator."""
    tenant = _load_row(db, tenant_id)
    done: list[str] = []
    combined: TenantSecret | None = None
    if tenant.secret_id:
        try:
            combined = _read(store, TenantSecret, tenant_id, tenant.secret_id)
        except SecretNotFoundError:
            if not tenant.split:
                raise SplitError(
                    f"its combined secret {tenant.secret_id} is missing and it is not split"
                ) from None
    if combined is None:
        done.append(
            "already split" if tenant.secret_id is None else "already split; its combined secret is gone"
        )
    else:
        done.append(_copy_combined(db, store, prefix, tenant, combined))
    if not delete_combined or tenant.secret_id is None:
        if tenant.secret_id and combined is not None:
            done.append(f"combined secret {tenant.secret_id} kept")
        return "; ".join(done)
    # Only now, with the split secrets verified and announced: the combined secret goes.
    scheduled = store.schedule_deletion(tenant.secret_id, recovery_days=recovery_days)
    with db.unscoped() as session:
        row = session.get(Tenant, tenant_id)
        if row is None:
            raise LookupError(tenant_id)
        row.secret_id = None
        announce_tenant_changed(session, tenant_id)
    if scheduled:
        done.append(f"combined secret {tenant.secret_id} scheduled for deletion in {recovery_days} days")
    return "; ".join(done)


def _copy_combined(
    db: Database, store: SecretStore, prefix: str, tenant: TenantInfo, combined: TenantSecret
) -> str:
    webhook_id = tenant.webhook_secret_id or webhook_secret_name(prefix, tenant.id)
    credential_id = tenant.credential_secret_id or credential_secret_name(prefix, tenant.id)
    parts: list[tuple[str, BaseModel, str]] = [
        (webhook_id, combined.webhook_part(), "webhook secrets (read by the API)"),
        (credential_id, combined.credential_part(), "ServiceDesk Plus credential (read by the worker)"),
    ]
    copied = False
    for secret_id, part, what in parts:
        if not _same(store, tenant.id, secret_id, part):
            store.put_json(
                secret_id, part.model_dump(exclude_none=True), description=_description(tenant.id, what)
            )
            copied = True
    if not all(_same(store, tenant.id, secret_id, part) for secret_id, part, _ in parts):
        raise SplitError("the split secrets read back differ from the combined secret; row unchanged")
    with db.unscoped() as session:
        row = session.get(Tenant, tenant.id)
        if row is None:
            raise LookupError(tenant.id)
        row.webhook_secret_id, row.credential_secret_id = webhook_id, credential_id
        announce_tenant_changed(session, tenant.id)
    if copied or not tenant.split:
        return f"split into {webhook_id} and {credential_id}"
    return "already split"
