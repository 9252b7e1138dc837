"""ServiceDesk Plus Cloud's OAuth: access tokens from the tenant's refresh token, cached per tenant.

ServiceDesk Plus Cloud authenticates API calls with a Zoho Accounts access token that lives an hour
(`expires_in`: 3600 s). A static access token in the tenant's secret would stop working an hour after
it was stored, so a cloud tenant's secret holds what does not expire: the refresh token (as its
`servicedesk_credential`) and the OAuth client it was issued to (`oauth`: client id, client secret,
the data centre's accounts server). The worker exchanges the refresh token for an access token on first
use, reuses it until a minute before it expires, and when ServiceDesk Plus answers 401 anyway (the
token was revoked, or expired early) it gets a new one once and repeats the request. A 401 is sent
before anything is processed, so repeating a note's POST after it cannot post the note twice.

Zoho limits token requests per refresh token (a handful a minute), so the worker's threads share one
cache and refresh one at a time per tenant: a burst of jobs after a quiet hour makes one token request,
not one per thread.

Refresh protocol (Zoho Accounts, "Access Token Expiry", zoho.com/accounts/protocol/oauth, read
2026-12-02): POST `<accounts server>/oauth/v2/token` with form fields `grant_type=refresh_token`,
`client_id`, `client_secret`, `refresh_token`; the answer is JSON with `access_token` and `expires_in`
(seconds), or an `error` field. The client does not rely on the status code for errors.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.clients.egress import EgressRefused
from app.clients.errors import PermanentError, TransientError, parse_retry_after
from app.log import replace_secrets
from app.metrics import SDP_ERRORS

# The accounts servers of Zoho's data centres (Zoho developer documentation, "Generate Access Token and
# Refresh Token", zoho.com/fsm/developer/help/api/access-refresh.html, read 2026-12-02). The worker sends
# the tenant's client secret and refresh token here, so the host is checked against this list, not
# taken as typed; a data centre missing here is a one-line addition.
ACCOUNTS_HOSTS = frozenset(
    {
        "accounts.zoho.com",
        "accounts.zoho.com.au",
        "accounts.zoho.eu",
        "accounts.zoho.in",
        "accounts.zohocloud.ca",
        "accounts.zoho.sa",
    }
)
TOKEN_PATH = "/oauth/v2/token"  # noqa: S105 - a URL path, not a secret
# Refresh this long before the token's stated expiry: a request started just before it would be refused.
EXPIRY_MARGIN_SECONDS = 60.0
# Zoho's answer when a refresh token is used too often: wait and try again, the grant itself is fine.
_THROTTLED = "Access Denied"


class OAuthClient(BaseModel):
    """The OAuth client a tenant's refresh token was issued to (part of the worker's secret)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    client_id: str = Field(min_length=1)
    client_secret: str = Field(min_length=1)
    accounts_url: str = Field(min_length=1)

    @field_validator("accounts_url")
    @classmethod
    def _url_shape(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("accounts_url must be the accounts server's URL, e.g. https://accounts.zoho.eu")
        return value.rstrip("/")

    @property
    def token_url(self) -> str:
        return self.accounts_url + TOKEN_PATH


def accounts_url_problem(url: str, *, allow_loopback: bool) -> str | None:
    """Why the worker must not send a refresh token to `url`, or None. Loopback (the test suite's and
    `make run`'s fake accounts server) only where ServiceDesk Plus on loopback is allowed too."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if allow_loopback and parts.scheme == "http" and host in ("127.0.0.1", "::1", "localhost"):
        return None
    if parts.scheme != "https":
        return "the accounts server must be reached over https"
    if host not in ACCOUNTS_HOSTS or parts.port not in (None, 443):
        return f"{host or 'no host'} is not a Zoho accounts server ({', '.join(sorted(ACCOUNTS_HOSTS))})"
    if parts.path not in ("", "/"):
        return "the accounts server's URL has no path (the token path is added)"
    return None


@dataclass(frozen=True, slots=True)
class _Issued:
    token: str
    good_until: float


class AccessTokens:
    """Access tokens per grant, shared by the worker's threads (one instance per process)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._issued: dict[str, _Issued] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def valid(self, key: str) -> str | None:
        issued = self._issued.get(key)
        return issued.token if issued is not None and self._clock() < issued.good_until else None

    def refresh_lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def keep(self, key: str, token: str, expires_in: float) -> None:
        with self._guard:
            self._issued[key] = _Issued(token, self._clock() + expires_in - EXPIRY_MARGIN_SECONDS)

    def forget(self, key: str, token: str) -> None:
        """Drop `token` if it is still the one cached: another thread may have refreshed meanwhile."""
        with self._guard:
            if (issued := self._issued.get(key)) is not None and issued.token == token:
                del self._issued[key]


def grant_key(client: OAuthClient, refresh_token: str) -> str:
    """The cache key: a digest, so no refresh token sits in a dict a debugger or a dump may print."""
    material = "\0".join((client.accounts_url, client.client_id, refresh_token))
    return hashlib.sha256(material.encode()).hexdigest()


class ZohoOAuth(httpx.Auth):
    """httpx auth flow for ServiceDesk Plus Cloud: a cached access token, renewed once on a 401."""

    def __init__(
        self, client: OAuthClient, refresh_token: str, tokens: AccessTokens, accounts_http: httpx.Client
    ) -> None:
        self._client = client
        self._refresh_token = refresh_token
        self._tokens = tokens
        self._http = accounts_http
        self._key = grant_key(client, refresh_token)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._access_token()
        request.headers["Authorization"] = f"Zoho-oauthtoken {token}"
        response = yield request
        if response.status_code == httpx.codes.UNAUTHORIZED:
            self._tokens.forget(self._key, token)
            request.headers["Authorization"] = f"Zoho-oauthtoken {self._access_token()}"
            yield request

    def _access_token(self) -> str:
        if (token := self._tokens.valid(self._key)) is not None:
            return token
        with self._tokens.refresh_lock(self._key):
            if (token := self._tokens.valid(self._key)) is not None:
                return token  # another thread refreshed while this one waited
            token, expires_in = self._refresh()
            # Masked in logs from now on; the tenant's previous access token is dropped from the mask.
            replace_secrets(f"sdp-oauth:{self._key}", token)
            self._tokens.keep(self._key, token, expires_in)
            return token

    def _refresh(self) -> tuple[str, float]:
        form = {
            "grant_type": "refresh_token",
            "client_id": self._client.client_id,
            "client_secret": self._client.client_secret,
            "refresh_token": self._refresh_token,
        }
        try:
            response = self._http.post(self._client.token_url, data=form)
        except EgressRefused as error:
            SDP_ERRORS.labels("oauth_refresh", "refused").inc()
            raise PermanentError(f"servicedesk OAuth refresh refused: {error}") from None
        except httpx.TransportError as error:
            SDP_ERRORS.labels("oauth_refresh", "transport").inc()
            raise TransientError(f"accounts server unreachable: {type(error).__name__}") from None
        return _issued_token(response)


def _issued_token(response: httpx.Response) -> tuple[str, float]:
    status = response.status_code
    if status == httpx.codes.TOO_MANY_REQUESTS or status >= 500:
        SDP_ERRORS.labels("oauth_refresh", str(status)).inc()
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        raise TransientError(f"accounts server answered {status}", retry_after=retry_after)
    try:
        payload: Any = response.json()
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        SDP_ERRORS.labels("oauth_refresh", "invalid_json").inc()
        raise PermanentError(f"accounts server answered {status} without a JSON object")
    if (error := payload.get("error")) is not None:
        SDP_ERRORS.labels("oauth_refresh", "refused").inc()
        if error == _THROTTLED:
            raise TransientError("accounts server throttled the refresh token (too many requests)")
        # invalid_client, invalid_code (refresh token revoked)...: the tenant's admin must re-authorise.
        raise PermanentError(f"servicedesk OAuth refresh refused: {str(error)[:80]}")
    token, expires_in = payload.get("access_token"), payload.get("expires_in")
    if not isinstance(token, str) or not token or not isinstance(expires_in, int) or expires_in <= 0:
        SDP_ERRORS.labels("oauth_refresh", "invalid_json").inc()
        raise PermanentError("accounts server's answer has no access_token and expires_in")
    return token, float(expires_in)
