"""Engines and tenant-scoped sessions.

The service connects as a non-owner role, so PostgreSQL row-level security applies to it; every
transaction first sets `app.tenant_id` (transaction-local), which the policies compare against.
Migrations and the admin CLI connect as the owner.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from sqlalchemy import URL, Engine, create_engine, event, func, make_url, select
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from app.credentials import owner_credentials
from app.log import register_secrets, replace_secrets
from app.secret_store import SecretStore
from app.settings import Settings
from app.tracing import instrument_engine

TENANT_SETTING = "app.tenant_id"
# Shared by the app role's two pools (this engine, and the webhook's in app/db/ingest.py).
# How long a caller waits for a free connection before it is answered 503 (Retry-After).
POOL_TIMEOUT_SECONDS = 5
# IAM tokens and RDS failovers both favour recycling connections regularly.
CONNECTION_RECYCLE_SECONDS = 600


def _psycopg(url: URL) -> URL:
    return url.set(drivername="postgresql+psycopg")


def _connect_args(settings: Settings, url: URL) -> dict[str, Any]:
    args: dict[str, Any] = {
        "connect_timeout": settings.database_connect_timeout_seconds,
        "application_name": settings.service_name,
        # A runaway query must not hold a worker thread (or a webhook) forever.
        "options": "-c statement_timeout=15000 -c lock_timeout=5000",
    }
    if "sslmode" not in url.query:
        args["sslmode"] = settings.database_sslmode_effective
    if settings.database_sslrootcert and "sslrootcert" not in url.query:
        args["sslrootcert"] = settings.database_sslrootcert
    return args


def _registered(url: URL) -> URL:
    """`url`, its password now masked in the logs."""
    register_secrets(url.password)
    return url


def _app_url(settings: Settings) -> URL:
    if settings.database_url is not None:
        return _registered(_psycopg(make_url(settings.database_url.get_secret_value())))
    return URL.create(
        "postgresql+psycopg",
        username=settings.database_user,
        host=settings.database_host,
        port=settings.database_port,
        database=settings.database_name,
    )


def _uses_iam_tokens(settings: Settings) -> bool:
    return settings.database_iam_auth and settings.database_url is None


def _iam_token_factory(settings: Settings) -> Callable[[], str]:
    """RDS IAM auth: a fresh 15-minute token for every new connection, nothing stored."""
    rds = boto3.Session().client("rds", region_name=settings.aws_region)  # not the process-wide session

    def token() -> str:
        value = str(
            rds.generate_db_auth_token(
                DBHostname=settings.database_host,
                Port=settings.database_port,
                DBUsername=settings.database_user,
                Region=settings.aws_region,
            )
        )
        # One per connection: only the newest is masked, the set of secrets must not grow forever.
        replace_secrets("rds-iam-token", value)
        return value

    return token


def _use_iam_tokens(engine: Engine, settings: Settings) -> None:
    token = _iam_token_factory(settings)

    @event.listens_for(engine, "do_connect")
    def _token(_dialect: Any, _record: Any, _cargs: Any, cparams: dict[str, Any]) -> None:
        cparams["password"] = token()


def create_app_engine(settings: Settings) -> Engine:
    url = _app_url(settings)
    engine = create_engine(
        url,
        connect_args=_connect_args(settings, url),
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_pool_size,
        pool_timeout=POOL_TIMEOUT_SECONDS,
        pool_pre_ping=True,
        pool_recycle=CONNECTION_RECYCLE_SECONDS,
    )
    if _uses_iam_tokens(settings):
        _use_iam_tokens(engine, settings)
    instrument_engine(engine)  # a no-op unless the process set tracing up (app/tracing.py)
    return engine


def app_connect_kwargs(settings: Settings) -> Callable[[], dict[str, Any]]:
    """psycopg connection parameters of the app role, built per connection (IAM tokens expire): the
    same URL, TLS and timeouts as `create_app_engine`, for code that uses psycopg's own pool."""
    url = _app_url(settings)
    fixed: dict[str, Any] = {
        "host": url.host,
        "port": url.port,
        "user": url.username,
        "password": url.password,
        "dbname": url.database,
        **{key: value for key, value in url.query.items() if isinstance(value, str)},
        **_connect_args(settings, url),
    }
    token = _iam_token_factory(settings) if _uses_iam_tokens(settings) else None

    def kwargs() -> dict[str, Any]:
        params = {key: value for key, value in fixed.items() if value is not None}
        if token is not None:
            params["password"] = token()
        return params

    return kwargs


def owner_url(settings: Settings, store: SecretStore | None) -> URL:
    if settings.database_owner_url is not None:
        return _registered(_psycopg(make_url(settings.database_owner_url.get_secret_value())))
    username, password = owner_credentials(settings, store)
    return URL.create(
        "postgresql+psycopg",
        username=username,
        password=password,
        host=settings.database_host,
        port=settings.database_port,
        database=settings.database_name,
    )


def create_owner_engine(settings: Settings, store: SecretStore | None) -> Engine:
    url = owner_url(settings, store)
    args = _connect_args(settings, url)
    args["options"] = "-c lock_timeout=60000"  # migrations may wait on application locks
    return create_engine(url, connect_args=args, poolclass=NullPool)


class Database:
    """Session factory bound to one engine; `tenant()` is the only way the service touches rows."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def tenant(self, tenant_id: str) -> Iterator[Session]:
        """One transaction scoped to `tenant_id` by RLS; commits on success, rolls back on error."""
        with self._sessions.begin() as session:
            session.execute(select(func.set_config(TENANT_SETTING, tenant_id, True)))
            yield session

    @contextmanager
    def unscoped(self) -> Iterator[Session]:
        """A transaction with no tenant set: RLS shows no tenant rows, only SECURITY DEFINER helpers."""
        with self._sessions.begin() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
