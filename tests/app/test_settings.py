"""Start-up refuses missing, placeholder and insecure settings with one clear message."""

from __future__ import annotations

import subprocess
import sys

import pytest

from app.settings import SettingsError
from harness.processes import REPO, base_env
from tests.app.settings_env import LOCAL, load_with

AWS = {
    "APP_ENV": "production",
    "AWS_REGION": "eu-west-1",
    "DATABASE_HOST": "db.cluster-abc.eu-west-1.rds.amazonaws.com",
    "DATABASE_NAME": "ai_agents",
    "DATABASE_USER": "ai_agents_app",
    "DATABASE_IAM_AUTH": "true",
    "DATABASE_SSLROOTCERT": "/opt/rds/global-bundle.pem",
    "DATABASE_MASTER_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-1",
    "REDIS_HOST": "master.cache.eu-west-1.amazonaws.com",
    "REDIS_TLS": "true",
    "REDIS_AUTH_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:redis",
    "LLM_BASE_URL": "https://api.openai.com/v1",
    "LLM_MODEL": "gpt-4o-mini",
    "LLM_API_KEY_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:llm",
    "TENANT_SECRET_PREFIX": "ai-agents/production/tenants/",
    "CORS_ORIGINS": "https://admin.example.com,https://ops.example.com",
}


def test_local_and_aws_shapes_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_with(monkeypatch, LOCAL).database_sslmode_effective == "prefer"
    settings = load_with(monkeypatch, AWS)
    assert settings.database_sslmode_effective == "verify-full"
    assert settings.cors_origins == ["https://admin.example.com", "https://ops.example.com"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"LLM_API_KEY": "changeme"}, "LLM_API_KEY is a placeholder"),
        ({"DATABASE_URL": "postgresql://app:changeme@db/x"}, "DATABASE_URL password is a placeholder"),
        ({"DATABASE_URL": ""}, "DATABASE_URL"),
        ({"REDIS_URL": "http://redis"}, "REDIS_URL must start with"),
        ({"TASK_TIME_LIMIT_SECONDS": "1000"}, "below BROKER_VISIBILITY_TIMEOUT_SECONDS"),
        ({"WEBHOOK_MAX_BODY_BYTES": "10"}, "WEBHOOK_MAX_BODY_BYTES"),
    ],
)
def test_local_refusals(monkeypatch: pytest.MonkeyPatch, overrides: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match="invalid configuration") as error:
        load_with(monkeypatch, {**LOCAL, **overrides})
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_iam_tokens_are_refused_over_an_unverified_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    iam = {key: value for key, value in LOCAL.items() if key != "DATABASE_URL"}
    iam |= {"DATABASE_HOST": "db", "DATABASE_USER": "app", "DATABASE_IAM_AUTH": "true"}
    with pytest.raises(SettingsError, match="DATABASE_SSLMODE must be verify-full with DATABASE_IAM_AUTH"):
        load_with(monkeypatch, {**iam, "DATABASE_SSLMODE": "require", "DATABASE_SSLROOTCERT": "/ca.pem"})
    with pytest.raises(SettingsError, match="DATABASE_SSLROOTCERT"):
        load_with(monkeypatch, iam)
    assert load_with(monkeypatch, {**iam, "DATABASE_SSLROOTCERT": "/ca.pem"}).database_sslmode_effective == (
        "verify-full"
    )


def test_missing_everything_is_one_message(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError) as error:
        load_with(monkeypatch, {})
    text = str(error.value)
    for name in (
        "DATABASE_URL or DATABASE_HOST",
        "REDIS_URL or REDIS_HOST",
        "LLM_API_KEY or LLM_API_KEY_SECRET_ARN",
    ):
        assert name in text


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"REDIS_TLS": "false"}, "REDIS_TLS must be true"),
        ({"DATABASE_IAM_AUTH": "false"}, "DATABASE_IAM_AUTH must be true"),
        ({"DATABASE_SSLMODE": "disable"}, "DATABASE_SSLMODE must be verify-full"),
        # Encrypted but unverified: any peer in the VPC could pose as the database and take IAM tokens.
        ({"DATABASE_SSLMODE": "require"}, "DATABASE_SSLMODE must be verify-full"),
        ({"DATABASE_SSLMODE": "verify-ca"}, "DATABASE_SSLMODE must be verify-full"),
        ({"DATABASE_SSLROOTCERT": ""}, "DATABASE_SSLROOTCERT (the CA bundle) is required"),
        (
            {"REDIS_URL": "rediss://:a-long-redis-password-1@r:6379/0?ssl_cert_reqs=none"},
            "REDIS_URL must not turn certificate or host name checks off",
        ),
        ({"LLM_BASE_URL": "http://llm.internal/v1"}, "LLM_BASE_URL must use https://"),
        ({"CORS_ORIGINS": "*"}, "CORS_ORIGINS must not be *"),
        ({"LLM_API_KEY": "short-key"}, "LLM_API_KEY is shorter than 16"),
        ({"REDIS_URL": "redis://:a-long-redis-password-1@r:6379/0"}, "REDIS_URL must use rediss://"),
        ({"DATABASE_URL": "postgresql://u:a-long-database-password@db/x"}, "sslmode=verify-full"),
        (
            {"DATABASE_URL": "postgresql://u:a-long-database-password@db/x?sslmode=require"},
            "DATABASE_URL must set sslmode=verify-full",
        ),
    ],
)
def test_production_refusals(
    monkeypatch: pytest.MonkeyPatch, overrides: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError) as error:
        load_with(monkeypatch, {**AWS, **overrides})
    assert message in str(error.value)


@pytest.mark.parametrize(
    "argv",
    [
        [sys.executable, "-m", "uvicorn", "app.api.main:app", "--port", "0"],
        [sys.executable, "-m", "celery", "-A", "app.worker.celery_app", "worker"],
        [sys.executable, "-m", "app", "migrate"],
    ],
    ids=["api", "worker", "migrate"],
)
def test_processes_refuse_to_start_with_one_line(argv: list[str]) -> None:
    env = base_env({**LOCAL, "LLM_API_KEY": "changeme"})
    result = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "LLM_API_KEY is a placeholder" in result.stderr
    assert "Traceback" not in result.stderr
