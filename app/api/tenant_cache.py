"""Tenant rows for the webhook's signature check, cached for a minute per API process.

The webhook needs the tenant's row before it can check a signature (the row names the tenant's
secret), and reading it was a transaction of its own per delivery: a fifth of the API's CPU
(docs/performance.md). Only the secret's name is used from the cache. Whether the tenant is enabled is
decided by the database in the statement that stores the job (`app_accept_delivery`), so disabling a
tenant still refuses its very next delivery; unknown and disabled tenants are never cached, so adding
or enabling one is seen at once.
"""

from __future__ import annotations

import time

from starlette.concurrency import run_in_threadpool

from app.tenants import TenantDirectory, TenantInfo

TTL_SECONDS = 60.0
# Far above any real tenant count; only a bound against unbounded growth.
MAX_ENTRIES = 10_000


class TenantCache:
    """Used from the event loop only (one thread), hence no lock."""

    def __init__(self, directory: TenantDirectory, *, ttl_seconds: float = TTL_SECONDS) -> None:
        self._directory = directory
        self._ttl = ttl_seconds
        self._entries: dict[str, tuple[TenantInfo, float]] = {}

    async def get(self, tenant_id: str) -> TenantInfo | None:
        now = time.monotonic()
        entry = self._entries.get(tenant_id)
        if entry is not None and now - entry[1] < self._ttl:
            return entry[0]
        # A miss reads the row with the synchronous engine, off the event loop.
        tenant = await run_in_threadpool(self._directory.get, tenant_id)
        self._entries.pop(tenant_id, None)
        if tenant is not None and tenant.enabled:
            if len(self._entries) >= MAX_ENTRIES:
                del self._entries[next(iter(self._entries))]  # the oldest entry
            self._entries[tenant_id] = (tenant, now)
        return tenant
