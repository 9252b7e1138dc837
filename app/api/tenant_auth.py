"""Tenant authentication: one rule, one cache, for every tenant-scoped route.

A request names its tenant (`X-Tenant-ID`) and signs what it sends with one of the tenant's webhook
secrets (`X-ServiceDesk-Signature: sha256=<hex>`). What is signed depends on the route: the webhook
signs its raw body; a read signs `"{timestamp}\\n{METHOD}\\n{path}"` with a fresh timestamp
(app.signing.job_request_message). Every failure is the same 401: callers learn nothing about which
tenants exist.

Caching. A tenant's row, or the fact that there is no enabled tenant of that id, is kept
ROW_TTL_SECONDS; its secret for the secret store's TTL (SECRETS_CACHE_TTL_SECONDS, minutes in
production). So a delivery costs no database transaction and no Secrets Manager call, and a flood of
made-up tenant ids costs one look-up each per minute, not one per request.

Revocation does not wait for those TTLs: every tenant command announces its change
(app/tenant_events.py) and the listener drops that tenant at once. While the listener may be missing
announcements (it has not heard from the server for a second), cached entries older than
REVOCATION_BOUND_SECONDS are not trusted. So a retired secret, a disabled tenant or a new one is seen
by every API process within REVOCATION_BOUND_SECONDS of the command's commit; in practice within one
notification's delivery (milliseconds).

Whether a tenant is enabled is decided again by the database where a job is stored
(`app_accept_delivery`), so even a stale row never lets a disabled tenant's webhook in.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from starlette.concurrency import run_in_threadpool

from app.api.tenant_listener import TenantChangeListener
from app.metrics import TENANT_LOOKUPS
from app.secret_store import SecretStore
from app.signing import verify
from app.tenants import TenantDirectory, TenantInfo, valid_tenant_id, webhook_secret_ids

ROW_TTL_SECONDS = 60.0
REVOCATION_BOUND_SECONDS = 2.0
# A signature that fails against the cached secret refetches it at most this often: a secret changed
# in Secrets Manager by hand (no announcement) is seen at the next delivery, while a flood of bad
# signatures cannot become a flood of Secrets Manager calls (<= 1 per tenant per 2 s per process).
SECRET_REFRESH_SECONDS = 2.0
# Far above any real tenant count; only a bound against growth (look-ups of made-up tenant ids).
MAX_ENTRIES = 10_000


# Look-ups of tenant ids the cache does not hold, per process: what a flood of made-up ids can cost
# the database. Known tenants are almost always cached, so they do not feel it.
LOOKUPS_PER_SECOND = 50.0
LOOKUP_BURST = 100.0
# Checked against when the tenant is unknown or disabled, so that answer costs what a wrong signature
# costs (one HMAC per accepted secret; a rotation keeps two) and timing does not say which tenants exist.
_DECOY_SECRETS = (secrets.token_urlsafe(32), secrets.token_urlsafe(32))


class Unauthorized(Exception):
    """Unknown or disabled tenant, missing or wrong signature: all the same to the caller."""


class LookupsExhausted(Exception):
    """Too many look-ups of uncached tenant ids right now: 503 and Retry-After, never a wrong 401."""


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up. Event loop only, hence no lock."""

    def __init__(self, rate: float, burst: float) -> None:
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


class TenantAuthenticator:
    """Used from the event loop only (one thread), hence no lock around the row cache."""

    def __init__(
        self,
        directory: TenantDirectory,
        store: SecretStore,
        *,
        secret_prefix: str,
        connect_kwargs: Callable[[], dict[str, Any]],
    ) -> None:
        self._directory = directory
        self._store = store
        self._secret_prefix = secret_prefix
        self._rows: dict[str, tuple[TenantInfo | None, float]] = {}
        # Bumped by every `forget`: a look-up under way when one happened may have read the old row,
        # so its answer is used once but not cached.
        self._forgotten = 0
        self._lookups = TokenBucket(LOOKUPS_PER_SECOND, LOOKUP_BURST)
        # Ids this process has found as enabled tenants: their look-ups skip the bucket, so a flood of
        # made-up ids never turns a real tenant's cache refresh into a 503.
        self._known: set[str] = set()
        self.listener = TenantChangeListener(connect_kwargs, forget=self.forget, forget_all=self.forget_all)

    async def authenticate(self, tenant_id: str | None, signature: str | None, signed: bytes) -> TenantInfo:
        if not tenant_id or not signature or not valid_tenant_id(tenant_id):
            raise Unauthorized
        tenant = await self._tenant(tenant_id)
        if tenant is None:
            verify(signature, signed, _DECOY_SECRETS)
            raise Unauthorized
        if verify(signature, signed, await self._webhook_secrets(tenant)):
            return tenant
        age = self._directory.webhook_secrets_age(tenant)
        if age is not None and age > SECRET_REFRESH_SECONDS:
            fresh = await self._webhook_secrets(tenant, max_age=SECRET_REFRESH_SECONDS)
            if verify(signature, signed, fresh):
                return tenant
        raise Unauthorized

    # What the listener calls.

    def forget(self, tenant_id: str) -> None:
        self._forgotten += 1
        entry = self._rows.pop(tenant_id, None)
        for secret_id in webhook_secret_ids(
            self._secret_prefix, tenant_id, None if entry is None else entry[0]
        ):
            self._store.invalidate(secret_id)

    def forget_all(self) -> None:
        for tenant_id in list(self._rows):
            self.forget(tenant_id)

    # Caches.

    def _trusted_age(self, ttl: float) -> float:
        """How old a cached entry may be: its TTL while announcements arrive, else the bound."""
        return ttl if self.listener.live() else min(ttl, REVOCATION_BOUND_SECONDS)

    async def _tenant(self, tenant_id: str) -> TenantInfo | None:
        """The enabled tenant of that id, or None; from the cache when it may be trusted."""
        now = time.monotonic()
        entry = self._rows.get(tenant_id)
        if entry is not None and now - entry[1] < self._trusted_age(ROW_TTL_SECONDS):
            return entry[0]
        if tenant_id not in self._known and not self._lookups.take():
            TENANT_LOOKUPS.labels("refused").inc()
            raise LookupsExhausted
        forgotten = self._forgotten
        # A miss reads the row with the synchronous engine, off the event loop.
        row = await run_in_threadpool(self._directory.get, tenant_id)
        tenant = row if row is not None and row.enabled else None
        if tenant is not None and len(self._known) < MAX_ENTRIES:
            self._known.add(tenant_id)
        TENANT_LOOKUPS.labels("unknown" if tenant is None else "found").inc()
        if forgotten == self._forgotten:
            self._rows.pop(tenant_id, None)
            if len(self._rows) >= MAX_ENTRIES:
                del self._rows[next(iter(self._rows))]  # the oldest entry
            self._rows[tenant_id] = (tenant, now)
        return tenant

    async def _webhook_secrets(self, tenant: TenantInfo, *, max_age: float | None = None) -> list[str]:
        """The tenant's webhook secrets; the API reads nothing else of a tenant's secrets."""
        ttl = self._store.ttl if max_age is None else max_age
        limit = self._trusted_age(ttl)
        cached = self._directory.cached_webhook_secrets(tenant, max_age=limit)
        if cached is not None:
            return cached
        # A Secrets Manager call blocks (boto3): never on the event loop.
        return await run_in_threadpool(partial(self._directory.webhook_secrets, tenant, max_age=limit))
