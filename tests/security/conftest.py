"""Hostile-input and tenant-isolation suite against the real API and worker processes (tests/support)."""

from tests.support.fixtures import (  # noqa: F401 - fixtures are registered by name
    api,
    client,
    fake_llm,
    fake_servicedesk,
    moto,
    postgres,
    redis_server,
    stack,
    tenant_a,
    tenant_b,
    worker,
)
