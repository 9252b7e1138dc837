"""The development harness: real servers and fakes on loopback, and the service's own processes.

PostgreSQL, Redis, moto (Secrets Manager), fake ServiceDesk Plus and OpenAI-compatible servers, the API
and worker started exactly as the images start them, and `make run` (harness/localrun.py), which wires
them into a local instance for a person to try. The test suite registers its fixtures once
(tests/conftest.py, `harness.fixtures`); benchmarks and fault tests drive the classes directly.
Nothing under app/ imports it.
"""
