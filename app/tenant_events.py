"""The signal that a tenant changed: PostgreSQL NOTIFY on one channel, payload = the tenant id.

Every tenant administration command (add, rotate or retire a secret, enable, disable) sends it in the
same transaction as its database change, after the Secrets Manager write, so a process that receives
it and then re-reads sees the new state. The API listens and drops what it cached about that tenant
(app/api/tenant_listener.py): revocation is bounded by the notification's delivery, not a cache TTL.
NOTIFY is transactional (delivered on commit, never on rollback) and database-wide, so the app role
hears what the owner sends.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

CHANNEL = "ai_agents_tenant_changed"


def announce_tenant_changed(session: Session, tenant_id: str) -> None:
    """Queue the signal in the session's transaction; it is delivered when that commits."""
    session.execute(
        text("SELECT pg_notify(:channel, :tenant_id)"), {"channel": CHANNEL, "tenant_id": tenant_id}
    )
