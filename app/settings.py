"""Service configuration from the environment, validated once at start-up.

Two shapes are accepted. Locally and in tests the plain forms (`DATABASE_URL`, `REDIS_URL`,
`LLM_API_KEY`) are used. In AWS the ConfigMap gives host names and secret ARNs
(`DATABASE_HOST` + `DATABASE_IAM_AUTH`, `REDIS_HOST` + `REDIS_AUTH_SECRET_ARN`,
`LLM_API_KEY_SECRET_ARN`) and the pods read the secrets themselves through IRSA.
Anything missing, placeholder-like or insecure stops the process with one message naming every
offending variable, instead of failing later on the first request.
"""

from __future__ import annotations

import re
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class AppEnv(StrEnum):
    LOCAL = "local"
    TEST = "test"
    STAGING = "staging"
    PRODUCTION = "production"

    @property
    def deployed(self) -> bool:
        """Staging is held to production's bar: it is where production's config is rehearsed."""
        return self in {AppEnv.STAGING, AppEnv.PRODUCTION}


class SettingsError(Exception):
    """Raised with one human-readable message listing every configuration problem."""


# Values copied from templates that must never reach a running service.
_PLACEHOLDER = re.compile(
    r"^(changeme|change[-_]me|replace[-_]?me|replace_with.*|todo|tbd|xxx+|secret|password|example|"
    r"dummy|placeholder|your[-_].*|<.*>|\$\{.*\})$",
    re.IGNORECASE,
)
_MIN_SECRET_LENGTH = 16
JOB_LEASE_MARGIN_SECONDS = 5
_TENANT_PREFIX = re.compile(r"^[A-Za-z0-9/_+=.@-]*$")
# The only TLS mode that checks both the CA and the host name: anything weaker lets a peer inside the
# VPC pose as the database (and receive IAM tokens). verify-ca checks no host name.
VERIFIED_SSLMODE = "verify-full"
_URL_SSLMODE = re.compile(r"[?&]sslmode=([a-z-]+)")
# redis-py/kombu URL options that would switch certificate or host name checks off.
_WEAK_REDIS_TLS = re.compile(r"[?&](ssl_cert_reqs=(none|optional)|ssl_check_hostname=false)", re.IGNORECASE)


def is_placeholder(value: str) -> bool:
    return bool(_PLACEHOLDER.match(value.strip())) or "changeme" in value.lower()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    app_env: AppEnv = AppEnv.LOCAL
    log_level: str = "INFO"
    service_name: str = "ai-agents"

    aws_region: str = "us-east-1"
    aws_endpoint_url: str | None = None  # moto or LocalStack locally; unset in AWS

    # Database: either a URL (local/test) or host + IAM auth (AWS).
    database_url: SecretStr | None = None
    database_owner_url: SecretStr | None = None  # local form of DATABASE_MASTER_SECRET_ARN
    database_host: str | None = None
    database_port: int = 5432
    database_name: str = "ai_agents"
    database_user: str | None = None
    database_iam_auth: bool = False
    # libpq's sslmode; default verify-full when deployed or with IAM auth (the server's certificate and host name are
    # checked against DATABASE_SSLROOTCERT, the RDS CA bundle the images carry), prefer otherwise.
    database_sslmode: str | None = None
    database_sslrootcert: str | None = None
    database_master_secret_arn: str | None = None
    database_pool_size: int = Field(default=5, ge=1, le=50)
    database_connect_timeout_seconds: int = Field(default=5, ge=1, le=60)

    # Redis (Celery broker).
    redis_url: SecretStr | None = None
    redis_host: str | None = None
    redis_port: int = 6379
    redis_db: int = 0
    redis_tls: bool = False
    redis_auth_secret_arn: str | None = None
    # CA bundle the broker's certificate is checked against (with REDIS_TLS); unset: the system store,
    # which trusts ElastiCache's Amazon-issued certificates. Local TLS runs point it at their own CA.
    redis_ssl_ca_certs: str | None = None

    # LLM (any OpenAI-compatible endpoint).
    llm_base_url: str = "https://api.openai.com/v1"
    llm_model: str = "gpt-4o-mini"
    llm_api_key: SecretStr | None = None
    llm_api_key_secret_arn: str | None = None
    llm_timeout_seconds: float = Field(default=60.0, gt=0, le=600)
    llm_max_retries: int = Field(default=3, ge=0, le=10)
    llm_max_tokens: int = Field(default=800, ge=64, le=16000)
    llm_temperature: float = Field(default=0.2, ge=0, le=2)
    # Wall clock for one completion, its retries and their waits (and never past the job's deadline).
    llm_call_deadline_seconds: float = Field(default=120.0, gt=0, le=3600)
    llm_max_response_bytes: int = Field(default=1024 * 1024, ge=64 * 1024, le=64 * 1024 * 1024)
    prompt_version: str = "v1"

    # ServiceDesk Plus client.
    sdp_timeout_seconds: float = Field(default=15.0, gt=0, le=120)
    sdp_max_attempts: int = Field(default=4, ge=1, le=10)
    sdp_retry_max_wait_seconds: float = Field(default=30.0, ge=0, le=300)
    # Wall clock for one operation (get ticket, list notes, post note), its retries and their waits.
    sdp_call_deadline_seconds: float = Field(default=60.0, gt=0, le=3600)
    sdp_max_response_bytes: int = Field(default=1024 * 1024, ge=16 * 1024, le=64 * 1024 * 1024)
    # Let tenants' ServiceDesk Plus URLs reach loopback (local runs and tests: the fake listens on
    # 127.0.0.1). Private, link-local and other non-public destinations are always refused.
    sdp_allow_loopback: bool = False

    # Tenants and secrets.
    tenant_secret_prefix: str = "ai-agents/local/tenants/"  # noqa: S105 - a name prefix, not a secret
    secrets_cache_ttl_seconds: int = Field(default=300, ge=0, le=3600)

    # API.
    webhook_max_body_bytes: int = Field(default=256 * 1024, ge=1024, le=10 * 1024 * 1024)
    cors_origins: Annotated[list[str], NoDecode] = []
    job_auth_max_skew_seconds: int = Field(default=300, ge=10, le=3600)
    enqueue_timeout_seconds: float = Field(default=2.0, gt=0, le=30)

    # Worker.
    worker_concurrency: int = Field(default=8, ge=1, le=256)
    worker_metrics_port: int = Field(default=9090, ge=0, le=65535)
    task_soft_time_limit_seconds: int = Field(default=240, ge=5)
    task_time_limit_seconds: int = Field(default=300, ge=10)
    broker_visibility_timeout_seconds: int = Field(default=900, ge=30)
    task_max_retries: int = Field(default=5, ge=0, le=50)
    task_retry_backoff_max_seconds: int = Field(default=300, ge=1)
    sweeper_interval_seconds: float = Field(default=60.0, gt=0)
    sweeper_stale_after_seconds: int = Field(default=300, ge=1)
    # Enforced by the worker itself under any pool (Celery's time limits are not, under threads);
    # default TASK_SOFT_TIME_LIMIT_SECONDS. Must end before the job's lease (see job_lease_seconds).
    job_deadline_seconds: float | None = Field(default=None, gt=0)
    # Jobs of one tenant running at once in one worker process; default half the threads.
    tenant_max_concurrency: int | None = Field(default=None, ge=1, le=256)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @model_validator(mode="after")
    def _refuse_unsafe(self) -> Self:
        problems = _collect_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def database_sslmode_effective(self) -> str:
        verified = self.app_env.deployed or self.database_iam_auth
        return self.database_sslmode or (VERIFIED_SSLMODE if verified else "prefer")

    @property
    def job_deadline(self) -> float:
        """Seconds an attempt may spend on ServiceDesk Plus and the LLM, all calls together."""
        return self.job_deadline_seconds or float(self.task_soft_time_limit_seconds)

    @property
    def job_lease_seconds(self) -> int:
        """How long a claimed job stays `running` before the sweeper may hand it to another worker: it
        outlives the hard time limit, and so the job deadline and the attempt's last bookkeeping."""
        return self.task_time_limit_seconds + JOB_LEASE_MARGIN_SECONDS

    @property
    def tenant_concurrency(self) -> int:
        default = max(1, self.worker_concurrency // 2)
        return min(self.worker_concurrency, self.tenant_max_concurrency or default)


def _secret_problem(name: str, value: str, *, deployed: bool) -> str | None:
    if not value.strip():
        return f"{name} is empty"
    if is_placeholder(value):
        return f"{name} is a placeholder value"
    if deployed and len(value) < _MIN_SECRET_LENGTH:
        return f"{name} is shorter than {_MIN_SECRET_LENGTH} characters"
    return None


def _url_password_problem(name: str, url: str, *, deployed: bool) -> str | None:
    password = urlsplit(url).password
    if password is None:
        return None
    return _secret_problem(f"{name} password", password, deployed=deployed)


def _database_tls_problems(s: Settings) -> list[str]:
    """Deployed, and wherever IAM tokens are sent, only a verified connection will do."""
    problems: list[str] = []
    must_verify = s.app_env.deployed or s.database_iam_auth
    why = "outside local/test" if s.app_env.deployed else "with DATABASE_IAM_AUTH"
    url_mode = None
    if s.database_url is not None:
        match = _URL_SSLMODE.search(s.database_url.get_secret_value())
        url_mode = match.group(1) if match else None
        if must_verify and url_mode != VERIFIED_SSLMODE:
            problems.append(f"DATABASE_URL must set sslmode={VERIFIED_SSLMODE} {why}")
    if must_verify and url_mode is None and s.database_sslmode_effective != VERIFIED_SSLMODE:
        problems.append(f"DATABASE_SSLMODE must be {VERIFIED_SSLMODE} {why}")
    if (
        must_verify
        and not s.database_sslrootcert
        and "sslrootcert=" not in (s.database_url.get_secret_value() if s.database_url is not None else "")
    ):
        problems.append(f"DATABASE_SSLROOTCERT (the CA bundle) is required {why}")
    return problems


def _database_problems(s: Settings) -> list[str]:
    deployed = s.app_env.deployed
    problems: list[str] = []
    if s.database_url is None and s.database_host is None:
        return ["DATABASE_URL or DATABASE_HOST is required"]
    if s.database_url is not None:
        url = s.database_url.get_secret_value()
        if not url.startswith(("postgresql://", "postgresql+psycopg://")):
            problems.append("DATABASE_URL must start with postgresql+psycopg:// or postgresql://")
        elif problem := _url_password_problem("DATABASE_URL", url, deployed=deployed):
            problems.append(problem)
    if s.database_host is not None:
        if not s.database_user:
            problems.append("DATABASE_USER is required with DATABASE_HOST")
        if deployed and not s.database_iam_auth:
            problems.append("DATABASE_IAM_AUTH must be true outside local/test")
    problems += _database_tls_problems(s)
    if s.database_owner_url is not None and (
        problem := _url_password_problem(
            "DATABASE_OWNER_URL", s.database_owner_url.get_secret_value(), deployed=deployed
        )
    ):
        problems.append(problem)
    return problems


def _redis_problems(s: Settings) -> list[str]:
    deployed = s.app_env.deployed
    if s.redis_url is None and s.redis_host is None:
        return ["REDIS_URL or REDIS_HOST is required"]
    problems: list[str] = []
    if s.redis_url is not None:
        url = s.redis_url.get_secret_value()
        if not url.startswith(("redis://", "rediss://")):
            problems.append("REDIS_URL must start with redis:// or rediss://")
        elif deployed and not url.startswith("rediss://"):
            problems.append("REDIS_URL must use rediss:// (TLS) outside local/test")
        elif deployed and _WEAK_REDIS_TLS.search(url):
            problems.append("REDIS_URL must not turn certificate or host name checks off outside local/test")
        elif problem := _url_password_problem("REDIS_URL", url, deployed=deployed):
            problems.append(problem)
    elif deployed:
        if not s.redis_tls:
            problems.append("REDIS_TLS must be true outside local/test")
        if not s.redis_auth_secret_arn:
            problems.append("REDIS_AUTH_SECRET_ARN is required outside local/test")
    return problems


def _llm_problems(s: Settings) -> list[str]:
    deployed = s.app_env.deployed
    problems: list[str] = []
    if s.llm_api_key is None and s.llm_api_key_secret_arn is None:
        problems.append("LLM_API_KEY or LLM_API_KEY_SECRET_ARN is required")
    elif s.llm_api_key is not None and (
        problem := _secret_problem("LLM_API_KEY", s.llm_api_key.get_secret_value(), deployed=deployed)
    ):
        problems.append(problem)
    if not s.llm_base_url.startswith(("http://", "https://")):
        problems.append("LLM_BASE_URL must be an http(s) URL")
    elif deployed and not s.llm_base_url.startswith("https://"):
        problems.append("LLM_BASE_URL must use https:// outside local/test")
    if not s.llm_model.strip():
        problems.append("LLM_MODEL is empty")
    return problems


def _worker_problems(s: Settings) -> list[str]:
    problems: list[str] = []
    # A task still running when the visibility timeout expires is delivered a second time.
    if s.task_soft_time_limit_seconds >= s.task_time_limit_seconds:
        problems.append("TASK_SOFT_TIME_LIMIT_SECONDS must be below TASK_TIME_LIMIT_SECONDS")
    if s.task_time_limit_seconds >= s.broker_visibility_timeout_seconds:
        problems.append("TASK_TIME_LIMIT_SECONDS must be below BROKER_VISIBILITY_TIMEOUT_SECONDS")
    if s.task_retry_backoff_max_seconds >= s.broker_visibility_timeout_seconds:
        problems.append("TASK_RETRY_BACKOFF_MAX_SECONDS must be below BROKER_VISIBILITY_TIMEOUT_SECONDS")
    # The sweeper re-sends a `running` job once its lease (TASK_TIME_LIMIT_SECONDS + 5 s) is over: a job
    # still within its deadline, or writing its outcome just after it, must never look abandoned.
    if s.job_deadline >= s.task_time_limit_seconds:
        problems.append(
            "JOB_DEADLINE_SECONDS (default TASK_SOFT_TIME_LIMIT_SECONDS) must be below TASK_TIME_LIMIT_SECONDS"
        )
    if s.sdp_allow_loopback and s.app_env.deployed:
        problems.append("SDP_ALLOW_LOOPBACK must be false outside local/test")
    return problems


def _collect_problems(s: Settings) -> list[str]:
    problems = [*_database_problems(s), *_redis_problems(s), *_llm_problems(s), *_worker_problems(s)]
    if not s.tenant_secret_prefix or not _TENANT_PREFIX.match(s.tenant_secret_prefix):
        problems.append("TENANT_SECRET_PREFIX must be a Secrets Manager name prefix")
    if s.app_env.deployed and "*" in s.cors_origins:
        problems.append("CORS_ORIGINS must not be * outside local/test")
    return problems


def _format_error(error: ValidationError) -> str:
    parts: list[str] = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]).upper()
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{field}: {message}" if field else message)
    return "invalid configuration: " + "; ".join(parts)


def load_settings() -> Settings:
    """Read and validate the environment; raise SettingsError with one message."""
    try:
        return Settings()
    except ValidationError as error:
        raise SettingsError(_format_error(error)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
