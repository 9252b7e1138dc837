"""The service verifies its database's and its broker's TLS certificates, against real servers.

A PostgreSQL and a redis-server (the harness's, started here with TLS on loopback) present certificates
from a test CA (trustme) issued to ``localhost``. The service's own connection code (the app engine, the
IAM-token connection parameters, the broker URL) must connect when it trusts that CA and asks for
``localhost``, and refuse when it trusts another CA (an impostor's certificate) or asks for a name the
certificate does not carry (``127.0.0.1``): in both refusals before anything, an IAM token included, is
sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import redis
import trustme
from kombu.connection import Connection
from sqlalchemy import text

from app.credentials import redis_url
from app.db.engine import app_connect_kwargs, create_app_engine
from harness.net import free_port, port_open, wait_until
from harness.postgres import OWNER, OWNER_PASSWORD, PostgresServer
from harness.redis_server import RedisServer
from tests.app.settings_env import load_with

GOOD_HOST = "localhost"
WRONG_HOST = "127.0.0.1"  # the same server, but not a name its certificate carries
LLM_KEY = "sk-test-0123456789abcdef"


@dataclass(frozen=True)
class Pki:
    ca: Path  # the CA that issued the servers' certificates
    other_ca: Path  # a CA the servers know nothing of: trusting only it is trusting an impostor
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    base = tmp_path_factory.mktemp("pki")
    ca, other = trustme.CA(), trustme.CA()
    leaf = ca.issue_cert(GOOD_HOST)
    paths = Pki(base / "ca.pem", base / "other-ca.pem", base / "server.pem", base / "server.key")
    ca.cert_pem.write_to_path(str(paths.ca))
    other.cert_pem.write_to_path(str(paths.other_ca))
    leaf.cert_chain_pems[0].write_to_path(str(paths.cert))
    leaf.private_key_pem.write_to_path(str(paths.key))
    paths.key.chmod(0o600)
    return paths


@pytest.fixture(scope="module")
def tls_postgres(pki: Pki) -> Iterator[PostgresServer]:
    server = PostgresServer()
    # In the server's own directory: PostgreSQL (run as `postgres` under root) must reach them, and insists
    # its key belongs to the server's user and is readable by it alone.
    cert, key = server.base_dir / "server.pem", server.base_dir / "server.key"
    cert.write_bytes(pki.cert.read_bytes())
    key.write_bytes(pki.key.read_bytes())
    key.chmod(0o600)
    server.chown(cert, key)
    server.extra_options = f"-c ssl=on -c ssl_cert_file={cert} -c ssl_key_file={key}"
    server.start()
    yield server
    server.destroy()


@pytest.fixture(scope="module")
def tls_redis(pki: Pki) -> Iterator[tuple[RedisServer, int]]:
    tls_port = free_port()
    server = RedisServer(
        extra_args=(
            "--tls-port", str(tls_port), "--tls-cert-file", str(pki.cert), "--tls-key-file", str(pki.key),
            "--tls-ca-cert-file", str(pki.ca), "--tls-auth-clients", "no",
        )
    ).start()  # fmt: skip
    wait_until(lambda: port_open(tls_port), 10, what="redis-server TLS port")
    yield server, tls_port
    server.destroy()


def _database_env(server: PostgresServer, host: str, ca: Path) -> dict[str, str]:
    """The local URL form, TLS from the settings (as the ConfigMap gives them): verify-full + a CA."""
    return {
        "APP_ENV": "test",
        "DATABASE_URL": f"postgresql+psycopg://{OWNER}:{OWNER_PASSWORD}@{host}:{server.port}/postgres",
        "DATABASE_SSLMODE": "verify-full",
        "DATABASE_SSLROOTCERT": str(ca),
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "LLM_API_KEY": LLM_KEY,
    }


def test_postgres_verify_full_connects_to_the_right_server(
    monkeypatch: pytest.MonkeyPatch, tls_postgres: PostgresServer, pki: Pki
) -> None:
    settings = load_with(monkeypatch, _database_env(tls_postgres, GOOD_HOST, pki.ca))
    engine = create_app_engine(settings)
    try:
        with engine.connect() as conn:
            ssl_in_use = conn.execute(text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))
            assert ssl_in_use.scalar_one() is True
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("host", "trust", "reason"),
    [
        (GOOD_HOST, "other_ca", "certificate verify failed"),
        (WRONG_HOST, "ca", 'server certificate for "localhost" does not match host name "127.0.0.1"'),
    ],
    ids=["untrusted-certificate", "wrong-host-name"],
)
def test_postgres_verify_full_refuses(
    monkeypatch: pytest.MonkeyPatch,
    tls_postgres: PostgresServer,
    pki: Pki,
    host: str,
    trust: str,
    reason: str,
) -> None:
    settings = load_with(monkeypatch, _database_env(tls_postgres, host, getattr(pki, trust)))
    engine = create_app_engine(settings)
    try:
        with pytest.raises(Exception, match=reason):
            engine.connect().close()
    finally:
        engine.dispose()


def test_iam_tokens_go_only_over_a_verified_connection(
    monkeypatch: pytest.MonkeyPatch, tls_postgres: PostgresServer, pki: Pki
) -> None:
    """The deployed shape (host + IAM auth): verify-full by default, and an impostor gets no token."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEEXAMPLE00")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "example-secret-key-for-signing-only-000")
    env = {
        "APP_ENV": "test",
        "DATABASE_HOST": GOOD_HOST,
        "DATABASE_PORT": str(tls_postgres.port),
        "DATABASE_NAME": "postgres",
        "DATABASE_USER": OWNER,
        "DATABASE_IAM_AUTH": "true",
        "DATABASE_SSLROOTCERT": str(pki.other_ca),
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "LLM_API_KEY": LLM_KEY,
    }
    settings = load_with(monkeypatch, env)
    assert settings.database_sslmode_effective == "verify-full"
    params = app_connect_kwargs(settings)()
    assert params["sslmode"] == "verify-full" and params["password"].startswith(f"{GOOD_HOST}:")
    # Refused in the TLS handshake: libpq sends the password (the token) only after it.
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        psycopg.connect(**params).close()
    assert "password authentication failed" not in tls_postgres.log_file.read_text()


def _broker_env(port: int, host: str, ca: Path) -> dict[str, str]:
    return {
        "APP_ENV": "test",
        "DATABASE_URL": "postgresql+psycopg://app:local-password-123@127.0.0.1:5432/ai_agents",
        "REDIS_HOST": host,
        "REDIS_PORT": str(port),
        "REDIS_TLS": "true",
        "REDIS_SSL_CA_CERTS": str(ca),
        "LLM_API_KEY": LLM_KEY,
    }


def test_redis_tls_connects_to_the_right_server(
    monkeypatch: pytest.MonkeyPatch, tls_redis: tuple[RedisServer, int], pki: Pki
) -> None:
    server, port = tls_redis
    url = redis_url(load_with(monkeypatch, _broker_env(port, GOOD_HOST, pki.ca)), None)
    assert url.startswith("rediss://") and "ssl_check_hostname=true" in url
    # The API's client (redis-py) and the Celery broker connection (kombu) both read the URL.
    client = redis.Redis.from_url(url, password=server.password, socket_timeout=5)
    try:
        assert client.ping() is True
    finally:
        client.close()
    with Connection(url, password=server.password, connect_timeout=5) as broker:
        broker.ensure_connection(max_retries=1)
        assert broker.connected


@pytest.mark.parametrize(
    ("host", "trust", "reason"),
    [
        (GOOD_HOST, "other_ca", "certificate verify failed"),
        (WRONG_HOST, "ca", "Hostname mismatch|IP address mismatch"),
    ],
    ids=["untrusted-certificate", "wrong-host-name"],
)
def test_redis_tls_refuses(
    monkeypatch: pytest.MonkeyPatch,
    tls_redis: tuple[RedisServer, int],
    pki: Pki,
    host: str,
    trust: str,
    reason: str,
) -> None:
    server, port = tls_redis
    url = redis_url(load_with(monkeypatch, _broker_env(port, host, getattr(pki, trust))), None)
    client = redis.Redis.from_url(url, password=server.password, socket_timeout=5, retry=None)
    try:
        with pytest.raises(redis.ConnectionError, match=reason):
            client.ping()
    finally:
        client.close()
    with (
        Connection(url, password=server.password, connect_timeout=5) as broker,
        pytest.raises(Exception, match=reason),
    ):
        broker.ensure_connection(max_retries=0)
