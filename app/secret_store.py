"""AWS Secrets Manager reads with a TTL cache.

Secrets are fetched with the pod's own IAM role (IRSA) and cached for `SECRETS_CACHE_TTL_SECONDS`, so a
rotation is picked up without a restart while a burst of webhooks costs one API call per tenant.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from app.log import register_secrets
from app.settings import Settings


class SecretUnavailableError(Exception):
    """Secrets Manager could not be reached or refused: a dependency failure (503), not bad input."""


class SecretNotFoundError(Exception):
    """The secret does not exist."""


def _mask_in_logs(raw: str) -> None:
    """Mask this secret in every log line from now on: the whole string and, for a JSON secret, each
    string inside it (webhook secrets, the ServiceDesk Plus credential, the database password), as
    that is what a log line would quote."""
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError:
        parsed = None
    register_secrets(raw, *_strings_in(parsed))


def _strings_in(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return [text for item in value for text in _strings_in(item)]
    return []


def _scheduled_for_deletion(error: ClientError) -> bool:
    """A secret scheduled for deletion cannot be read or written until restored: it is gone."""
    details = error.response.get("Error", {})
    message = str(details.get("Message", "")).lower()
    return details.get("Code") == "InvalidRequestException" and (
        "marked deleted" in message or "marked for deletion" in message
    )


@dataclass(slots=True)
class _Entry:
    value: str
    fetched_at: float


def secretsmanager_client(settings: Settings) -> Any:
    # A session of its own: credentials come from this process's environment when the store is made,
    # never from boto3's process-wide default session, which caches whatever it resolved first.
    return boto3.Session().client(
        "secretsmanager",
        region_name=settings.aws_region,
        endpoint_url=settings.aws_endpoint_url,
        # Fail fast: a request waiting on Secrets Manager is a request holding a worker thread.
        config=Config(connect_timeout=3, read_timeout=5, retries={"max_attempts": 3, "mode": "standard"}),
    )


class SecretStore:
    def __init__(self, client: Any, ttl_seconds: float) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._cache: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        # Bumped by every invalidation: a fetch that was under way when one happened may have read
        # the old value, so its result is returned but not cached.
        self._invalidations = 0

    @property
    def ttl(self) -> float:
        return self._ttl

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretStore:
        return cls(secretsmanager_client(settings), settings.secrets_cache_ttl_seconds)

    def get_string(self, secret_id: str, *, max_age: float | None = None) -> str:
        """Return the secret string, from cache when younger than the TTL (or `max_age`)."""
        cached = self.cached_string(secret_id, max_age=max_age)
        if cached is not None:
            return cached
        with self._lock:
            invalidations = self._invalidations
        value = self._fetch(secret_id)
        with self._lock:
            if invalidations == self._invalidations:
                self._cache[secret_id] = _Entry(value, time.monotonic())
        return value

    def cached_string(self, secret_id: str, *, max_age: float | None = None) -> str | None:
        """The cached value when younger than the TTL (or `max_age`), else None; never calls AWS, so
        it is safe on an event loop."""
        limit = self._ttl if max_age is None else min(max_age, self._ttl)
        with self._lock:
            entry = self._cache.get(secret_id)
        if entry is not None and time.monotonic() - entry.fetched_at < limit:
            return entry.value
        return None

    def get_json(self, secret_id: str, *, max_age: float | None = None) -> dict[str, Any]:
        raw = self.get_string(secret_id, max_age=max_age)
        try:
            data = json.loads(raw)
        except json.JSONDecodeError:
            raise SecretUnavailableError(f"secret {secret_id} is not JSON") from None
        if not isinstance(data, dict):
            raise SecretUnavailableError(f"secret {secret_id} is not a JSON object")
        return data

    def age(self, secret_id: str) -> float | None:
        with self._lock:
            entry = self._cache.get(secret_id)
        return None if entry is None else time.monotonic() - entry.fetched_at

    def invalidate(self, secret_id: str) -> None:
        with self._lock:
            self._cache.pop(secret_id, None)
            self._invalidations += 1

    def _fetch(self, secret_id: str) -> str:
        try:
            response = self._client.get_secret_value(SecretId=secret_id)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code == "ResourceNotFoundException" or _scheduled_for_deletion(error):
                raise SecretNotFoundError(secret_id) from None
            raise SecretUnavailableError(f"secrets manager error {code} for {secret_id}") from None
        except BotoCoreError as error:
            raise SecretUnavailableError(f"secrets manager unreachable: {type(error).__name__}") from None
        value = response.get("SecretString")
        if not isinstance(value, str):
            raise SecretUnavailableError(f"secret {secret_id} has no SecretString")
        _mask_in_logs(value)
        return value

    # Writes are used by the admin CLI only.
    def put_json(self, secret_id: str, value: dict[str, Any], *, description: str = "") -> str:
        """Create the secret or add a new version; return its ARN."""
        body = json.dumps(value)
        _mask_in_logs(body)
        try:
            response = self._client.put_secret_value(SecretId=secret_id, SecretString=body)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
            response = self._client.create_secret(Name=secret_id, SecretString=body, Description=description)
        self.invalidate(secret_id)
        return str(response["ARN"])

    def schedule_deletion(self, secret_id: str, *, recovery_days: int) -> bool:
        """Schedule the secret's deletion; it can be restored (`aws secretsmanager restore-secret`) for
        `recovery_days` (7-30). False when it was already gone or scheduled."""
        try:
            self._client.delete_secret(SecretId=secret_id, RecoveryWindowInDays=recovery_days)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if code != "ResourceNotFoundException" and not _scheduled_for_deletion(error):
                raise
            return False
        finally:
            self.invalidate(secret_id)
        return True
