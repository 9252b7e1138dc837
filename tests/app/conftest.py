"""The app suite runs against real PostgreSQL, Redis, moto and fake upstreams (see tests/support)."""

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
