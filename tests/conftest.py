"""The shared fixtures (real PostgreSQL, Redis, moto, fake upstreams, the API and a worker), registered
once for the whole suite: each server starts once per session, on first use. See harness/fixtures.py."""

pytest_plugins = ["harness.fixtures"]
