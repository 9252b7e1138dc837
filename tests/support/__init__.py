"""Real servers for tests: PostgreSQL, Redis, moto (Secrets Manager), fake ServiceDesk Plus and
OpenAI-compatible servers, and the service's own API and worker processes.

Suites reuse them through `tests.support.fixtures` (session-scoped pytest fixtures) or directly
through the classes here (smoke, load and fault tests)."""
