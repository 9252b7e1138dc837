"""The whole service environment wired together: servers, env vars, tenants, and helpers to drive it."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import Engine, create_engine, text

from app.signing import job_request_message, sign
from harness.fake_llm import FakeLLM
from harness.fake_servicedesk import FakeServiceDesk
from harness.moto_server import CREDENTIALS, REGION, MotoServer
from harness.postgres import PostgresServer
from harness.processes import run_cli
from harness.redis_server import RedisServer

APP_ROLE = "ai_agents_app"
APP_ROLE_PASSWORD = "app-role-password-for-tests"
LLM_API_KEY = "test-llm-key-0123456789abcdef"


@dataclass
class TenantFixture:
    id: str
    webhook_secret: str
    instance: str  # fake ServiceDesk Plus instance
    auth_mode: str
    credential: str


@dataclass
class Stack:
    postgres: PostgresServer
    redis: RedisServer
    moto: MotoServer
    servicedesk: FakeServiceDesk
    llm: FakeLLM
    database: str
    env: dict[str, str] = field(default_factory=dict)
    tenants: dict[str, TenantFixture] = field(default_factory=dict)
    _owner: Engine | None = None

    @classmethod
    def create(
        cls,
        postgres: PostgresServer,
        redis: RedisServer,
        moto: MotoServer,
        servicedesk: FakeServiceDesk,
        llm: FakeLLM,
        database: str = "ai_agents",
    ) -> Stack:
        owner_url = postgres.create_database(database)
        stack = cls(postgres, redis, moto, servicedesk, llm, database)
        stack.env = {
            "APP_ENV": "test",
            "LOG_LEVEL": "INFO",
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL": moto.url,
            **CREDENTIALS,
            "DATABASE_URL": postgres.url(APP_ROLE, APP_ROLE_PASSWORD, database),
            "DATABASE_OWNER_URL": owner_url,
            "REDIS_URL": redis.url,
            "LLM_BASE_URL": llm.base_url,
            "LLM_MODEL": "test-model",
            "LLM_API_KEY": LLM_API_KEY,
            "LLM_MAX_RETRIES": "1",
            "LLM_TIMEOUT_SECONDS": "10",
            # Its own prefix per stack: moto keeps one state per process, and the fault suite's stack
            # lives beside the shared one with tenants of the same names.
            "TENANT_SECRET_PREFIX": f"ai-agents/test-{uuid.uuid4().hex[:8]}/tenants/",
            "SECRETS_CACHE_TTL_SECONDS": "300",
            "SDP_TIMEOUT_SECONDS": "5",
            "SDP_MAX_ATTEMPTS": "2",
            "SDP_RETRY_MAX_WAIT_SECONDS": "2",
            # The fake ServiceDesk Plus listens on 127.0.0.1, which the CLI and the worker refuse otherwise.
            "SDP_ALLOW_LOOPBACK": "true",
            "TASK_SOFT_TIME_LIMIT_SECONDS": "8",
            "TASK_TIME_LIMIT_SECONDS": "10",
            "BROKER_VISIBILITY_TIMEOUT_SECONDS": "60",
            "TASK_MAX_RETRIES": "3",
            "TASK_RETRY_BACKOFF_MAX_SECONDS": "3",
            "SWEEPER_INTERVAL_SECONDS": "1",
            "SWEEPER_STALE_AFTER_SECONDS": "3",
            "WORKER_CONCURRENCY": "4",
        }
        return stack

    @property
    def secret_prefix(self) -> str:
        return self.env["TENANT_SECRET_PREFIX"]

    # Setup through the real CLI.

    def migrate(self) -> None:
        result = run_cli(self.env, "migrate")
        if result.returncode != 0:
            raise RuntimeError(f"migrate failed: {result.stdout}{result.stderr}")

    def add_tenant(self, tenant_id: str, auth_mode: str = "authtoken") -> TenantFixture:
        secret = f"whsec-{uuid.uuid4().hex}"
        credential = f"sdp-{uuid.uuid4().hex}"
        self.servicedesk.add_instance(tenant_id, auth_mode, credential)
        result = run_cli(
            {**self.env, "SDP_CREDENTIAL": credential, "WEBHOOK_SECRET": secret},
            "tenants", "add", tenant_id, "--name", f"Tenant {tenant_id}",
            "--servicedesk-url", self.servicedesk.base_url(tenant_id), "--auth-mode", auth_mode,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"tenants add failed: {result.stdout}{result.stderr}")
        tenant = TenantFixture(tenant_id, secret, tenant_id, auth_mode, credential)
        self.tenants[tenant_id] = tenant
        return tenant

    def add_cloud_tenant(self, tenant_id: str) -> TenantFixture:
        """A ServiceDesk Plus Cloud tenant added as operators do: OAuth client, refresh token as the
        credential. The fake instance issues access tokens for that refresh token and takes no other."""
        secret = f"whsec-{uuid.uuid4().hex}"
        refresh_token = f"1000.{uuid.uuid4().hex}.{uuid.uuid4().hex}"
        client_id, client_secret = f"1000.{uuid.uuid4().hex[:20].upper()}", uuid.uuid4().hex
        self.servicedesk.add_instance(tenant_id, "oauth", refresh_token)
        self.servicedesk.grant_oauth(tenant_id, client_id, client_secret, refresh_token)
        environment = {
            **self.env,
            "SDP_CREDENTIAL": refresh_token,
            "WEBHOOK_SECRET": secret,
            "SDP_OAUTH_CLIENT_SECRET": client_secret,
        }
        result = run_cli(
            environment, "tenants", "add", tenant_id, "--name", f"Tenant {tenant_id}",
            "--servicedesk-url", self.servicedesk.base_url(tenant_id), "--auth-mode", "oauth",
            "--oauth-client-id", client_id, "--oauth-accounts-url", self.servicedesk.accounts_url(tenant_id),
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"tenants add failed: {result.stdout}{result.stderr}")
        tenant = TenantFixture(tenant_id, secret, tenant_id, "oauth", refresh_token)
        self.tenants[tenant_id] = tenant
        return tenant

    # Driving the API.

    def new_ticket(
        self, tenant: TenantFixture, subject: str = "VPN down", description: str = "It broke."
    ) -> str:
        ticket_id = f"T{uuid.uuid4().hex[:12]}"
        self.servicedesk.add_ticket(tenant.instance, ticket_id, subject, description)
        return ticket_id

    @staticmethod
    def payload(ticket_id: str, **extra: Any) -> bytes:
        return json.dumps(
            {"ticket_id": ticket_id, "subject": "VPN down", "description": "It broke.", **extra}
        ).encode()

    @staticmethod
    def webhook_headers(tenant: TenantFixture, body: bytes, secret: str | None = None) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "X-Tenant-ID": tenant.id,
            "X-ServiceDesk-Signature": sign(secret or tenant.webhook_secret, body),
        }

    @staticmethod
    def job_headers(tenant: TenantFixture, path: str, *, at: float | None = None) -> dict[str, str]:
        timestamp = str(int(time.time() if at is None else at))
        return {
            "X-Tenant-ID": tenant.id,
            "X-Signature-Timestamp": timestamp,
            "X-ServiceDesk-Signature": sign(
                tenant.webhook_secret, job_request_message(timestamp, "GET", path)
            ),
        }

    def post_webhook(self, client: httpx.Client, tenant: TenantFixture, ticket_id: str) -> httpx.Response:
        body = self.payload(ticket_id)
        return client.post("/webhook/servicedesk", content=body, headers=self.webhook_headers(tenant, body))

    # Inspecting the database as the owner (bypasses RLS: tests see everything).

    @property
    def owner(self) -> Engine:
        if self._owner is None:
            self._owner = create_engine(self.env["DATABASE_OWNER_URL"], pool_size=2)
        return self._owner

    def terminate_app_connections(self) -> int:
        """Close every connection of the app role from the server side, as a failover or restart does."""
        with self.owner.connect() as conn:
            killed = conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE usename = :role AND pid <> pg_backend_pid()"
                ),
                {"role": APP_ROLE},
            ).scalar_one()
            conn.commit()
        return int(killed)

    def job_count(self, tenant_id: str | None = None) -> int:
        query = "SELECT count(*) FROM enhancement_jobs" + (" WHERE tenant_id = :t" if tenant_id else "")
        with self.owner.connect() as conn:
            return int(conn.execute(text(query), {"t": tenant_id}).scalar_one())

    def job(self, job_id: str) -> dict[str, Any]:
        with self.owner.connect() as conn:
            row = (
                conn.execute(text("SELECT * FROM enhancement_jobs WHERE id = :id"), {"id": job_id})
                .mappings()
                .one()
            )
            return dict(row)

    def wait_for_job(
        self, job_id: str, statuses: tuple[str, ...] = ("succeeded", "failed"), timeout: float = 30
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if job["status"] in statuses:
                return job
            time.sleep(0.1)
        raise TimeoutError(f"job {job_id} still {self.job(job_id)['status']} after {timeout}s")

    def close(self) -> None:
        if self._owner is not None:
            self._owner.dispose()
