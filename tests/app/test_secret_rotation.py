"""Rotating a tenant's webhook secret as docs/runbook.md tells the operator to, through the real CLI and
the real API process, while ServiceDesk Plus keeps sending.

"ServiceDesk Plus" here is a thread that posts a signed webhook every 50 ms with whatever secret is
configured in it. The operator rotates (the CLI generates and prints the new secret), configures it in
ServiceDesk Plus, and retires the old one. A delivery signed with the new secret must never be refused,
and the old secret must be refused within the API's documented bound once retired.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from pathlib import Path

import httpx

from app.api.tenant_auth import REVOCATION_BOUND_SECONDS
from app.signing import sign
from harness.processes import REPO, ApiProcess, run_cli
from harness.stack import Stack, TenantFixture

WEBHOOK = "/webhook/servicedesk"
RUNBOOK = Path(REPO) / "docs" / "runbook.md"


class ServiceDeskPlus:
    """Sends signed webhooks with its configured secret and records (secret, status) of each."""

    def __init__(self, stack: Stack, url: str, tenant: TenantFixture) -> None:
        self._stack, self._url, self._tenant = stack, url, tenant
        self._lock = threading.Lock()
        self._secret = tenant.webhook_secret
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.results: list[tuple[str, int]] = []

    def configure(self, secret: str) -> None:
        with self._lock:
            self._secret = secret

    def statuses(self, secret: str) -> list[int]:
        with self._lock:
            return [status for used, status in self.results if used == secret]

    def __enter__(self) -> ServiceDeskPlus:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        with httpx.Client(base_url=self._url, timeout=15) as http:
            while not self._stop.is_set():
                with self._lock:
                    secret = self._secret
                status = _deliver(self._stack, http, self._tenant, secret)
                with self._lock:
                    self.results.append((secret, status))
                time.sleep(0.05)


def _deliver(stack: Stack, http: httpx.Client, tenant: TenantFixture, secret: str) -> int:
    body = stack.payload(stack.new_ticket(tenant))
    headers = {**stack.webhook_headers(tenant, body), "X-ServiceDesk-Signature": sign(secret, body)}
    return http.post(WEBHOOK, content=body, headers=headers).status_code


def _operator(stack: Stack, *args: str) -> str:
    """A tenants command as the runbook writes it: no secret in the environment or on the line."""
    result = run_cli(stack.env, "tenants", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_runbook_rotation_never_refuses_the_new_secret_and_retires_the_old_within_the_bound(
    stack: Stack, api: ApiProcess, client: httpx.Client
) -> None:
    tenant = stack.add_tenant(f"tenant-runbook-{uuid.uuid4().hex[:6]}")
    old = tenant.webhook_secret
    with ServiceDeskPlus(stack, api.url, tenant) as sdp:
        while len(sdp.statuses(old)) < 5:  # the old secret is cached by the API now
            time.sleep(0.05)

        printed = _operator(stack, "rotate-secret", tenant.id)
        match = re.search(r"new webhook secret: (\S+)", printed)
        assert match, printed
        new = match.group(1)
        sdp.configure(new)  # the operator sets it in ServiceDesk Plus
        assert _deliver(stack, client, tenant, old) == 202  # both are accepted until the retire step
        assert _deliver(stack, client, tenant, new) == 202
        time.sleep(0.5)

        printed = _operator(stack, "retire-secret", tenant.id)
        assert new not in printed and "new webhook secret" not in printed  # nothing generated
        started = time.monotonic()
        while _deliver(stack, client, tenant, old) != 401:
            assert time.monotonic() - started <= REVOCATION_BOUND_SECONDS, "old secret still accepted"
            time.sleep(0.02)
        assert _deliver(stack, client, tenant, new) == 202
        time.sleep(0.5)

    assert set(sdp.statuses(old)) == {202}  # before ServiceDesk Plus switched
    signed_with_new = sdp.statuses(new)
    assert len(signed_with_new) >= 5
    assert set(signed_with_new) == {202}, signed_with_new


def test_the_runbook_documents_these_steps() -> None:
    (row,) = [line for line in RUNBOOK.read_text().splitlines() if line.startswith("| Tenant webhook secret")]
    assert "tenants rotate-secret <tenant>" in row
    assert "tenants retire-secret <tenant>" in row
    assert "--keep 1" not in row


def test_rotating_down_to_one_secret_is_refused_and_changes_nothing(
    stack: Stack, client: httpx.Client
) -> None:
    """`rotate-secret --keep 1` generated a new secret and dropped the one ServiceDesk Plus signs with."""
    tenant = stack.add_tenant(f"tenant-keep1-{uuid.uuid4().hex[:6]}")
    result = run_cli(stack.env, "tenants", "rotate-secret", tenant.id, "--keep", "1")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "retire-secret" in result.stderr
    assert "webhook secret:" not in result.stdout
    assert _deliver(stack, client, tenant, tenant.webhook_secret) == 202


def test_retiring_with_nothing_to_retire_keeps_the_secret(stack: Stack, client: httpx.Client) -> None:
    tenant = stack.add_tenant(f"tenant-retire-{uuid.uuid4().hex[:6]}")
    assert "nothing to retire" in _operator(stack, "retire-secret", tenant.id)
    assert _deliver(stack, client, tenant, tenant.webhook_secret) == 202
    missing = run_cli(stack.env, "tenants", "retire-secret", f"no-such-{uuid.uuid4().hex[:6]}")
    assert missing.returncode == 1
