"""Schemathesis over the running API's own OpenAPI schema: no 5xx, every response matches the schema.

Requests are sent unsigned as generated and, for the webhook, also correctly signed by tenant A (the
generated body serialized, then signed), so generation reaches past the 401 into parsing and storage.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.core import NotSet
from schemathesis.core.result import Ok

from harness.fixtures import serve_api
from harness.processes import ApiProcess
from harness.stack import Stack, TenantFixture

MAX_EXAMPLES = 40


def _check(case: schemathesis.Case, api: ApiProcess, stack: Stack, tenant_a: TenantFixture) -> None:
    response = case.call(base_url=api.url, timeout=30)
    assert response.status_code < 500, (case.method, case.path, response.text[:300])
    case.validate_response(response)
    if case.path == "/webhook/servicedesk" and case.method.upper() == "POST":
        body = json.dumps(case.body).encode() if not isinstance(case.body, NotSet) else b""
        signed = httpx.post(
            f"{api.url}/webhook/servicedesk",
            content=body,
            headers={**(case.headers or {}), **stack.webhook_headers(tenant_a, body)},
            timeout=30,
        )
        assert signed.status_code in {200, 202, 413, 422}, (body[:200], signed.status_code, signed.text[:300])
        assert "detail" in signed.json() or "job_id" in signed.json()


@pytest.fixture(scope="module")
def api(stack: Stack) -> Iterator[ApiProcess]:
    """An API process of this module's own: the made-up tenant ids it is sent fill no other test's
    caches and spend no other test's look-up budget (app/api/tenant_auth.py)."""
    yield from serve_api(stack)


def test_api_conforms_and_never_5xx(api: ApiProcess, stack: Stack, tenant_a: TenantFixture) -> None:
    # The Python API rather than the pytest plugin (`from_fixture` breaks on pytest 9's Function items).
    schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations() if isinstance(result, Ok)]
    assert {op.path for op in operations} >= {"/webhook/servicedesk", "/api/v1/jobs/{job_id}", "/health"}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            # Cases come from the schema and go to a real server over HTTP: they are slow, large or
            # filtered by design, which these checks would report as a problem of the strategy.
            suppress_health_check=[
                HealthCheck.too_slow,
                HealthCheck.data_too_large,
                HealthCheck.filter_too_much,
                HealthCheck.large_base_example,
            ],
            database=None,
        )
        def run(case: schemathesis.Case) -> None:
            _check(case, api, stack, tenant_a)

        run()
