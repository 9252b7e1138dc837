"""ServiceDesk Plus Cloud: access tokens renewed from the tenant's refresh token, over real HTTP.

The fake plays both ServiceDesk Plus Cloud and the Zoho accounts server: it issues access tokens only
for the tenant's refresh token and client, and accepts only tokens it issued and has not expired.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator

import httpx
import pytest

from app.clients.egress import guarded_transport
from app.clients.errors import PermanentError, TransientError
from app.clients.servicedesk import ServiceDeskClient
from app.clients.zoho_oauth import AccessTokens, OAuthClient, ZohoOAuth, accounts_url_problem
from app.db.models import AuthMode
from harness.fake_servicedesk import FakeServiceDesk, Grant
from harness.http_fake import Fault
from harness.processes import run_cli
from harness.stack import Stack

pytestmark = pytest.mark.usefixtures("worker")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Cloud:
    """One fake cloud instance with a ticket, and what a worker process holds for it."""

    def __init__(self, fake: FakeServiceDesk) -> None:
        self.fake = fake
        self.name = f"cloud-{uuid.uuid4().hex[:8]}"
        self.refresh_token = f"1000.{uuid.uuid4().hex}"
        fake.add_instance(self.name, "oauth", self.refresh_token)
        self.grant: Grant = fake.grant_oauth(self.name, "1000.CLIENT", "client-secret-1", self.refresh_token)
        fake.add_ticket(self.name, "T1", "Mail server down")
        self.clock = Clock()
        self.tokens = AccessTokens(clock=self.clock)
        self.accounts = httpx.Client(
            transport=guarded_transport(allow_loopback=True, max_response_bytes=64 * 1024), timeout=5.0
        )

    def oauth_client(self, client_secret: str = "client-secret-1") -> OAuthClient:
        return OAuthClient(
            client_id="1000.CLIENT",
            client_secret=client_secret,
            accounts_url=self.fake.accounts_url(self.name),
        )

    def servicedesk(
        self, *, client_secret: str = "client-secret-1", max_attempts: int = 4
    ) -> ServiceDeskClient:
        auth = ZohoOAuth(self.oauth_client(client_secret), self.refresh_token, self.tokens, self.accounts)
        return ServiceDeskClient(
            self.fake.base_url(self.name),
            AuthMode.OAUTH,
            self.refresh_token,
            allow_loopback=True,
            max_attempts=max_attempts,
            max_wait=0.2,
            auth=auth,
        )


@pytest.fixture
def cloud(fake_servicedesk: FakeServiceDesk) -> Iterator[Cloud]:
    cloud = Cloud(fake_servicedesk)
    yield cloud
    cloud.accounts.close()
    fake_servicedesk.clear_faults(f"POST /{cloud.name}/oauth/v2/token")


def test_an_access_token_is_fetched_once_and_reused(cloud: Cloud) -> None:
    with cloud.servicedesk() as sdp:
        assert sdp.get_ticket("T1").subject == "Mail server down"
        sdp.get_ticket("T1")
    with cloud.servicedesk() as sdp:  # a later job: a new client, the same process-wide cache
        sdp.get_ticket("T1")
    assert cloud.grant.token_requests == 1
    assert cloud.grant.refused == 0
    # The refresh token itself never reaches ServiceDesk Plus: only access tokens it issued.
    assert cloud.fake.violations == []


def test_an_expired_token_is_renewed_once_and_the_note_posted_once(cloud: Cloud) -> None:
    with cloud.servicedesk() as sdp:
        sdp.get_ticket("T1")
        cloud.fake.expire_tokens(cloud.name)  # an hour passes, or the token is revoked
        note_id = sdp.add_note("T1", "AI triage summary")
    notes = cloud.fake.notes_for(cloud.name, "T1")
    assert [note["id"] for note in notes] == [note_id]
    assert cloud.grant.refused == 1  # the POST was refused once, then repeated with a new token
    assert cloud.grant.token_requests == 2


def test_a_token_is_renewed_before_it_expires_without_a_refused_call(cloud: Cloud) -> None:
    with cloud.servicedesk() as sdp:
        sdp.get_ticket("T1")
        cloud.clock.now += 3600 - 60 + 1  # within the last minute of its hour
        sdp.get_ticket("T1")
    assert cloud.grant.token_requests == 2
    assert cloud.grant.refused == 0


def test_concurrent_first_calls_make_one_token_request(cloud: Cloud) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def fetch() -> None:
        try:
            start.wait()
            with cloud.servicedesk() as sdp:
                sdp.get_ticket("T1")
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert cloud.grant.token_requests == 1


def test_a_refused_refresh_is_permanent_and_names_zohos_error(cloud: Cloud) -> None:
    with cloud.servicedesk(client_secret="wrong-secret") as sdp, pytest.raises(PermanentError) as refused:
        sdp.get_ticket("T1")
    assert "servicedesk OAuth refresh refused: invalid_client" in str(refused.value)
    assert cloud.grant.token_requests == 1  # not retried: only a new grant helps
    assert cloud.grant.refused == 0  # and ServiceDesk Plus never saw a request without a token


def test_an_accounts_server_outage_is_transient(cloud: Cloud) -> None:
    cloud.fake.add_fault(f"POST /{cloud.name}/oauth/v2/token", Fault(status=503))
    with cloud.servicedesk(max_attempts=1) as sdp, pytest.raises(TransientError, match="answered 503"):
        sdp.get_ticket("T1")
    with cloud.servicedesk(max_attempts=1) as sdp:  # the outage is over: the job's retry works
        assert sdp.get_ticket("T1").id == "T1"


@pytest.mark.parametrize(
    ("url", "allow_loopback", "problem"),
    [
        ("https://accounts.zoho.eu", False, None),
        ("https://accounts.zoho.com/", False, None),
        ("http://accounts.zoho.com", False, "over https"),
        ("https://accounts.zoho.com.evil.example", False, "not a Zoho accounts server"),
        ("https://accounts.zoho.com:8443", False, "not a Zoho accounts server"),
        ("https://accounts.zoho.com/oauth/v2/token", False, "has no path"),
        ("http://127.0.0.1:9000/fake", False, "over https"),
        ("http://127.0.0.1:9000/fake", True, None),
    ],
)
def test_refresh_tokens_go_to_zoho_accounts_servers_only(
    url: str, allow_loopback: bool, problem: str | None
) -> None:
    found = accounts_url_problem(url, allow_loopback=allow_loopback)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_a_cloud_tenant_keeps_getting_notes_across_token_expiry(
    stack: Stack, client: httpx.Client, fake_servicedesk: FakeServiceDesk
) -> None:
    """Through the CLI, the API, Redis and a real worker process: the worker renews the token itself."""
    tenant = stack.add_cloud_tenant(f"cloud-{uuid.uuid4().hex[:8]}")
    grant = fake_servicedesk.instances[tenant.instance].grant
    assert grant is not None
    for round_ in range(2):
        ticket = stack.new_ticket(tenant, subject=f"Laptop won't boot ({round_})")
        response = stack.post_webhook(client, tenant, ticket)
        assert response.status_code == 202
        job = stack.wait_for_job(response.json()["job_id"])
        assert job["status"] == "succeeded", job["error"]
        assert len(fake_servicedesk.notes_for(tenant.instance, ticket)) == 1
        fake_servicedesk.expire_tokens(tenant.instance)
    assert grant.token_requests == 2
    assert grant.refused == 1  # the second job's first call, refused once and repeated


def test_rotating_a_cloud_tenants_webhook_secret_keeps_its_oauth_client(stack: Stack) -> None:
    tenant = stack.add_cloud_tenant(f"cloud-{uuid.uuid4().hex[:8]}")
    result = run_cli(stack.env, "tenants", "rotate-secret", tenant.id)
    assert result.returncode == 0, result.stdout + result.stderr
    secrets = stack.moto.client("secretsmanager")
    name = f"{stack.secret_prefix}servicedesk/{tenant.id}"
    stored = json.loads(secrets.get_secret_value(SecretId=name)["SecretString"])
    assert stored["servicedesk_credential"] == tenant.credential
    assert stored["oauth"]["client_id"].startswith("1000.")
    assert stored["oauth"]["accounts_url"] == stack.servicedesk.accounts_url(tenant.instance)
