"""A fair share of the worker's threads per tenant.

Without it, one tenant whose ServiceDesk Plus is slow (or hostile) could hold every thread of the
pool for as long as its jobs' deadlines allow, again and again, and no other tenant's job would run.
So a process runs at most `limit` jobs of one tenant at once (TENANT_MAX_CONCURRENCY, default half
the threads); a task for a tenant at its limit is put back on the queue before it claims its job (so
it costs no attempt) and the thread takes the next message, which is likely another tenant's.

The count is per process: with R worker replicas a tenant may hold up to R * limit threads in all,
still leaving every process's other threads to the other tenants.
"""

from __future__ import annotations

import random
import threading
from collections import Counter

# Put-back delays: the first is short, repeated ones grow (a tenant with a backlog of W waiting jobs
# then costs about W / 7 put-backs a second, not W), jittered so its jobs do not return in step.
DEFER_BASE_SECONDS = 0.5
DEFER_MAX_SECONDS = 10.0


class TenantSlots:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._running: Counter[str] = Counter()
        self._lock = threading.Lock()

    def try_acquire(self, tenant_id: str) -> bool:
        """Take one of the tenant's slots if it has one free; never blocks."""
        with self._lock:
            if self._running[tenant_id] >= self.limit:
                return False
            self._running[tenant_id] += 1
            return True

    def release(self, tenant_id: str) -> None:
        with self._lock:
            self._running[tenant_id] -= 1
            if self._running[tenant_id] <= 0:
                del self._running[tenant_id]

    def running(self, tenant_id: str) -> int:
        with self._lock:
            return self._running[tenant_id]


def defer_seconds(deferrals: int) -> float:
    """Delay before a put-back task runs again, after `deferrals` earlier put-backs of it."""
    ceiling = min(DEFER_MAX_SECONDS, DEFER_BASE_SECONDS * 2 ** min(deferrals, 10))
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not cryptography
