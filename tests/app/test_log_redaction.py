"""app/log.py at DEBUG: secret values masked wherever they appear, third-party loggers capped.

In process, with the real `configure_logging` writing to the captured stderr.
"""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog
from pydantic import SecretStr

from app import log as app_log
from app.credentials import llm_api_key, redis_url
from app.db.engine import create_app_engine
from app.secret_store import SecretStore
from app.settings import Settings

MASK = "[redacted]"
ReadLogs = Callable[[], str]


class _SecretsManager:
    """The one call SecretStore makes to read, answered from a dict."""

    def __init__(self, secrets: dict[str, str]) -> None:
        self.secrets = secrets

    def get_secret_value(self, SecretId: str) -> dict[str, Any]:  # noqa: N803 - boto3's parameter name
        return {"SecretString": self.secrets[SecretId]}


def _new_secret(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


@pytest.fixture
def read_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[ReadLogs]:
    """`configure_logging("DEBUG")` for one test, its stderr captured; the reader returns everything
    written so far, after checking that every line is one JSON object (masking must not break it)."""
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    loggers = [logger for logger in root.manager.loggerDict.values() if isinstance(logger, logging.Logger)]
    saved_levels = {logger: logger.level for logger in loggers}
    app_log.configure_logging("DEBUG")

    def read() -> str:
        text = stderr.getvalue()
        for line in text.splitlines():
            assert isinstance(json.loads(line), dict), line
        return text

    yield read
    root.handlers[:], root.level = saved_handlers, saved_level
    for logger, level in saved_levels.items():
        logger.setLevel(level)
    structlog.reset_defaults()


@pytest.fixture
def tenant_secret() -> dict[str, Any]:
    return {
        "webhook_secrets": [_new_secret("whsec"), _new_secret("whsec-old")],
        "servicedesk_credential": _new_secret("sdp"),
    }


def _load(secret: dict[str, Any]) -> str:
    """Read `secret` through SecretStore as the service does; return the raw SecretString."""
    raw = json.dumps(secret)
    SecretStore(_SecretsManager({"tenant": raw}), ttl_seconds=60).get_json("tenant")
    return raw


def test_loaded_secrets_are_masked_in_messages_fields_and_tracebacks(
    read_logs: ReadLogs, tenant_secret: dict[str, Any]
) -> None:
    _load(tenant_secret)
    webhook, old_webhook = tenant_secret["webhook_secrets"]
    credential = tenant_secret["servicedesk_credential"]
    log = app_log.get_logger("test")

    log.debug(f"calling ServiceDesk Plus with authtoken {credential}")
    log.info("upstream_call", headers={"authtoken": credential}, note=f"signed with {old_webhook}")
    try:
        raise RuntimeError(f"signature mismatch for {webhook}")
    except RuntimeError:
        log.exception("webhook_failed")

    logs = read_logs()
    assert "calling ServiceDesk Plus with authtoken" in logs
    assert "signature mismatch for" in logs and "Traceback" in logs
    for value in (webhook, old_webhook, credential):
        assert value not in logs
    assert logs.count(MASK) >= 4


def test_foreign_stdlib_loggers_are_masked(read_logs: ReadLogs, tenant_secret: dict[str, Any]) -> None:
    raw = _load(tenant_secret)
    credential = tenant_secret["servicedesk_credential"]
    library = logging.getLogger("some.library")

    library.warning("Response body: %r", raw.encode())
    try:
        raise ValueError(credential)
    except ValueError:
        library.error("request failed", exc_info=True)

    logs = read_logs()
    assert "Response body" in logs and "request failed" in logs and "ValueError" in logs
    assert credential not in logs
    assert all(value not in logs for value in tenant_secret["webhook_secrets"])


def test_a_raw_secret_string_is_masked_whole(read_logs: ReadLogs, tenant_secret: dict[str, Any]) -> None:
    raw = _load(tenant_secret)
    app_log.get_logger("test").info("loaded", value=raw)
    line = json.loads(read_logs())
    assert line["value"] == MASK


def test_env_form_credentials_are_masked(read_logs: ReadLogs) -> None:
    key, redis_password, db_password = _new_secret("sk"), _new_secret("redispw"), _new_secret("dbpw")
    settings = Settings(
        database_url=SecretStr(f"postgresql+psycopg://app:{db_password}@127.0.0.1/db"),
        redis_url=SecretStr(f"redis://:{redis_password}@127.0.0.1:6379/0"),
        llm_api_key=SecretStr(key),
    )
    create_app_engine(settings).dispose()  # never connects
    broker = redis_url(settings, None)
    app_log.get_logger("test").info(f"{broker} {llm_api_key(settings, None)} {db_password}")
    logs = read_logs()
    assert "redis://:" in logs
    assert all(value not in logs for value in (key, redis_password, db_password))


def test_values_with_quotes_backslashes_and_non_ascii_are_masked(read_logs: ReadLogs) -> None:
    value = 'pa"ss\\wörd-' + uuid.uuid4().hex
    app_log.register_secrets(value)
    app_log.get_logger("test").info(f"password is {value}", copy=[value])
    logging.getLogger("some.library").info("password is %s", value)
    logs = read_logs()
    assert logs.count(MASK) == 3
    assert "ss\\\\w" not in logs  # the JSON-escaped form of the middle of the value


def test_values_too_short_to_be_secrets_are_not_masked(read_logs: ReadLogs) -> None:
    app_log.register_secrets("7-chars", "", None, "eight-ch")
    app_log.get_logger("test").info("7-chars and eight-ch")
    assert json.loads(read_logs())["event"] == f"7-chars and {MASK}"


def test_registration_from_many_threads_while_logging(read_logs: ReadLogs) -> None:
    values = [_new_secret(f"thread{n}") for n in range(64)]
    log = app_log.get_logger("test")
    threads = [threading.Thread(target=app_log.register_secrets, args=(value,)) for value in values]
    for thread in threads:
        thread.start()
        log.info("registering", count=len(values))
    for thread in threads:
        thread.join()
    log.info(" ".join(values))
    logs = read_logs()
    assert all(value not in logs for value in values)


def test_replaced_values_are_masked_until_replaced(read_logs: ReadLogs) -> None:
    first, second = _new_secret("iam-token"), _new_secret("iam-token")
    app_log.replace_secrets("test-token", first)
    app_log.get_logger("test").info(first)
    app_log.replace_secrets("test-token", second)
    app_log.get_logger("test").info(f"{first} {second}")
    lines = [json.loads(line)["event"] for line in read_logs().splitlines()]
    assert lines == [MASK, f"{first} {MASK}"]


THIRD_PARTY = (
    "botocore",
    "boto3",
    "s3transfer",
    "urllib3",
    "httpx",
    "httpcore",
    "openai",
    "kombu",
    "celery",
    "redis",
    "psycopg",
    "sqlalchemy",
    "asyncio",
)


def test_third_party_loggers_stay_capped_at_debug(read_logs: ReadLogs) -> None:
    assert logging.getLogger("app.anything").isEnabledFor(logging.DEBUG)
    for name in THIRD_PARTY:
        assert not logging.getLogger(f"{name}.module").isEnabledFor(logging.DEBUG), name
    assert not logging.getLogger("sqlalchemy.engine.Engine").isEnabledFor(logging.INFO)
    assert not logging.getLogger("psycopg.pool").isEnabledFor(logging.INFO)

    logging.getLogger("botocore.parsers").debug("Response body: %s", "a-secret-string")
    logging.getLogger("botocore.credentials").warning("credentials expire soon")
    app_log.get_logger("app.test").debug("own_debug_line")
    logs = read_logs()
    assert "a-secret-string" not in logs
    assert "credentials expire soon" in logs and "own_debug_line" in logs


def test_caps_never_lower_a_stricter_app_level(read_logs: ReadLogs) -> None:
    app_log.configure_logging("ERROR")
    assert not logging.getLogger("botocore").isEnabledFor(logging.WARNING)
    assert logging.getLogger("botocore").isEnabledFor(logging.ERROR)
