"""No secret reaches the logs, even at DEBUG (the level staging once ran at).

At DEBUG botocore logs whole Secrets Manager responses, so every tenant's webhook secrets and
ServiceDesk Plus credential used to appear as message text, where the key-based redaction never
looks. These tests load secrets through the real code paths at DEBUG and search every line for them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid

import httpx
import pytest

from harness.moto_server import CREDENTIALS, REGION, MotoServer
from harness.postgres import OWNER_PASSWORD
from harness.processes import REPO, ApiProcess, WorkerProcess, base_env
from harness.stack import APP_ROLE_PASSWORD, LLM_API_KEY, Stack, TenantFixture

# Loads every kind of secret the service holds through the code the API, the worker and the CLI use,
# then writes one DEBUG line of its own, to prove DEBUG was on.
_LOAD_SECRETS = textwrap.dedent(
    """
    from app.credentials import llm_api_key, redis_url
    from app.db.engine import Database, create_app_engine, owner_url
    from app.db.models import AuthMode
    from app.log import configure_logging, get_logger
    from app.secret_store import SecretStore
    from app.settings import get_settings
    from app.tenants import TenantDirectory, TenantInfo, secret_name

    settings = get_settings()
    configure_logging(settings.log_level)
    store = SecretStore.from_settings(settings)
    redis_url(settings, store)
    llm_api_key(settings, store)
    owner_url(settings, store)
    secret_id = secret_name(settings.tenant_secret_prefix, "tenant-x")
    tenant = TenantInfo("tenant-x", "X", "https://sdp.invalid", AuthMode.AUTHTOKEN, secret_id, True)
    TenantDirectory(Database(create_app_engine(settings)), store).secret(tenant)
    get_logger("secret_logging_test").debug("secrets_loaded")
    """
)


def _new_secret(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def _leaked(logs: str, secrets: dict[str, str]) -> list[str]:
    """Names of the secrets whose value appears anywhere in `logs`."""
    return [name for name, value in secrets.items() if value in logs]


def test_loading_every_secret_at_debug_logs_none_of_them(moto: MotoServer) -> None:
    run = uuid.uuid4().hex[:8]
    secrets = {
        "webhook secret": _new_secret("whsec"),
        "previous webhook secret": _new_secret("whsec-old"),
        "ServiceDesk Plus credential": _new_secret("sdp"),
        "LLM API key": _new_secret("sk"),
        "Redis AUTH token": _new_secret("redis"),
        "database master password": _new_secret("dbpw"),
    }
    prefix = f"ai-agents/test-{run}/tenants/"
    sm = moto.secretsmanager()
    sm.create_secret(
        Name=f"{prefix}tenant-x",
        SecretString=json.dumps(
            {
                "webhook_secrets": [secrets["webhook secret"], secrets["previous webhook secret"]],
                "servicedesk_credential": secrets["ServiceDesk Plus credential"],
            }
        ),
    )
    arn = {
        name: sm.create_secret(Name=f"ai-agents/test-{run}/{name}", SecretString=value)["ARN"]
        for name, value in (
            ("llm", secrets["LLM API key"]),
            ("redis", secrets["Redis AUTH token"]),
            ("master", json.dumps({"username": "dbadmin", "password": secrets["database master password"]})),
        )
    }
    env = base_env(
        {
            "APP_ENV": "test",
            "LOG_LEVEL": "DEBUG",
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL": moto.url,
            **CREDENTIALS,
            "DATABASE_HOST": "127.0.0.1",
            "DATABASE_USER": "ai_agents_app",
            "DATABASE_MASTER_SECRET_ARN": arn["master"],
            "REDIS_HOST": "127.0.0.1",
            "REDIS_AUTH_SECRET_ARN": arn["redis"],
            "LLM_API_KEY_SECRET_ARN": arn["llm"],
            "TENANT_SECRET_PREFIX": prefix,
        }
    )

    result = subprocess.run(
        [sys.executable, "-c", _LOAD_SECRETS],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    logs = result.stdout + result.stderr
    assert result.returncode == 0, logs[-4000:]
    assert '"event": "secrets_loaded"' in logs, "the app's own DEBUG line is missing: was DEBUG on?"
    assert _leaked(logs, secrets) == [], logs[-4000:]


@pytest.fixture
def debug_service(stack: Stack) -> dict[str, str]:
    """The stack's environment at DEBUG, on a Redis database of its own so that only this test's
    worker takes this test's jobs."""
    return {**stack.env, "LOG_LEVEL": "DEBUG", "REDIS_URL": stack.redis.url.rsplit("/", 1)[0] + "/7"}


def test_api_and_worker_at_debug_log_no_secret(
    stack: Stack, tenant_a: TenantFixture, debug_service: dict[str, str]
) -> None:
    api = ApiProcess(debug_service)
    worker = WorkerProcess(debug_service)
    worker.argv[worker.argv.index("--loglevel") + 1] = "DEBUG"
    try:
        api.start_ready()
        worker.start()
        worker.wait_ready()
        with httpx.Client(base_url=api.url, timeout=15) as client:
            response = stack.post_webhook(client, tenant_a, stack.new_ticket(tenant_a))
        assert response.status_code == 202, response.text
        assert stack.wait_for_job(response.json()["job_id"])["status"] == "succeeded"
    finally:
        api.stop()
        worker.stop()

    logs = {"api": api.logs(), "worker": worker.logs()}
    secrets = {
        "webhook secret": tenant_a.webhook_secret,
        "ServiceDesk Plus credential": tenant_a.credential,
        "LLM API key": LLM_API_KEY,
        "Redis password": stack.redis.password,
        "app role password": APP_ROLE_PASSWORD,
        "owner password": OWNER_PASSWORD,
    }
    assert '"webhook_outcome": "accepted"' in logs["api"]
    assert '"event": "job_succeeded"' in logs["worker"]
    for name, text in logs.items():
        assert _leaked(text, secrets) == [], f"{name}: {text[-4000:]}"
