"""Image tests: the Dockerfiles parsed and linted, and the images' commands run from a wheel install
against real PostgreSQL, Redis, moto and fake upstreams (tests/support)."""

from tests.support.fixtures import (  # noqa: F401 - fixtures are registered by name
    fake_llm,
    fake_servicedesk,
    moto,
    postgres,
    redis_server,
)
