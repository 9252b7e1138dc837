"""ServiceDesk Plus REST API v3 client (on-premises `authtoken` or cloud Zoho OAuth).

A cloud tenant's calls carry an access token that `app.clients.zoho_oauth` renews from the tenant's
refresh token (`auth`); a static token (`credential` in `oauth` mode, the old form) lasts an hour.

The tenant's server is not trusted to be quick, small or where it says: every call (its retries
included) has a deadline, clipped to the job's (`app.clients.limits`); bodies are capped
(`max_response_bytes`) and connections go to public addresses only (`app.clients.egress`).

`transport` is the test seam: tests pass nothing and point `base_url` at a local fake server (with
`allow_loopback`), unit tests may pass an `httpx.MockTransport` (which bypasses the guard and caps).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import stamina

from app.clients import limits
from app.clients.egress import EgressRefused, guarded_transport
from app.clients.errors import PermanentError, TransientError, parse_retry_after
from app.db.models import AuthMode
from app.metrics import SDP_ERRORS, SDP_LATENCY

ACCEPT = "application/vnd.manageengine.sdp.v3+json"
MAX_RESPONSE_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Ticket:
    id: str
    subject: str
    description: str
    status: str | None = None
    priority: str | None = None
    category: str | None = None
    requester: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


def _name(value: Any) -> str | None:
    """SDP returns most attributes as objects `{"name": ..., "id": ...}`."""
    if isinstance(value, dict):
        name = value.get("name")
        return str(name) if name is not None else None
    return None if value is None else str(value)


def parse_ticket(ticket_id: str, payload: dict[str, Any]) -> Ticket:
    request = payload.get("request")
    if not isinstance(request, dict):
        raise PermanentError("servicedesk response has no `request` object")
    return Ticket(
        id=str(request.get("id", ticket_id)),
        subject=str(request.get("subject") or ""),
        description=str(request.get("description") or ""),
        status=_name(request.get("status")),
        priority=_name(request.get("priority")),
        category=_name(request.get("category")),
        requester=_name(request.get("requester")),
        raw={k: request.get(k) for k in ("id", "subject", "status", "priority", "category", "created_time")},
    )


def auth_headers(auth_mode: AuthMode, credential: str) -> dict[str, str]:
    if auth_mode is AuthMode.OAUTH:
        return {"Authorization": f"Zoho-oauthtoken {credential}"}
    return {"authtoken": credential}


class ServiceDeskClient:
    def __init__(
        self,
        base_url: str,
        auth_mode: AuthMode,
        credential: str,
        *,
        timeout: float = 15.0,
        max_attempts: int = 4,
        max_wait: float = 30.0,
        call_deadline: float = 60.0,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        allow_loopback: bool = False,
        transport: httpx.BaseTransport | None = None,
        auth: httpx.Auth | None = None,
    ) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            # file://, gopher:// ...: nothing to retry, the tenant's URL must be fixed.
            raise PermanentError(f"servicedesk URL must be http(s)://host, not {url.scheme or 'no'} scheme")
        self._max_attempts = max_attempts
        self._max_wait = max_wait
        self._call_deadline = call_deadline
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            # identity: the transport refuses compressed bodies, whose inflated size cannot be capped.
            headers={
                "Accept": ACCEPT,
                "Accept-Encoding": "identity",
                **({} if auth is not None else auth_headers(auth_mode, credential)),
            },
            auth=auth,
            timeout=timeout,
            transport=transport
            or guarded_transport(allow_loopback=allow_loopback, max_response_bytes=max_response_bytes),
            follow_redirects=False,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ServiceDeskClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def get_ticket(self, ticket_id: str) -> Ticket:
        response = self._call("get_ticket", "GET", f"/api/v3/requests/{quote(ticket_id, safe='')}")
        return parse_ticket(ticket_id, response)

    def list_notes(self, ticket_id: str) -> list[dict[str, Any]]:
        list_info = {"list_info": {"row_count": 100, "sort_field": "created_time", "sort_order": "desc"}}
        response = self._call(
            "list_notes",
            "GET",
            f"/api/v3/requests/{quote(ticket_id, safe='')}/notes",
            params={"input_data": json.dumps(list_info)},
        )
        notes = response.get("notes", [])
        return [note for note in notes if isinstance(note, dict)]

    def add_note(self, ticket_id: str, description: str) -> str | None:
        """Post a private note; return its id. Never repeated here when the POST may have landed."""
        input_data = {
            "note": {
                "description": description,
                "show_to_requester": False,
                "notify_technician": False,
                "mark_first_response": False,
                "add_to_linked_requests": False,
            }
        }
        response = self._call(
            "add_note",
            "POST",
            f"/api/v3/requests/{quote(ticket_id, safe='')}/notes",
            data={"input_data": json.dumps(input_data)},
        )
        note = response.get("note")
        return str(note["id"]) if isinstance(note, dict) and "id" in note else None

    def _call(self, operation: str, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        # One deadline for the operation, its retries and their waits (and never past the job's).
        with limits.deadline(self._call_deadline, "call deadline"):
            # Transient failures that are safe to repeat, after what `Retry-After` asks (capped) or an
            # exponential backoff, as long as the wait ends within the deadline.
            backoff = limits.backoff_within_deadline(
                initial=0.5, max_wait=self._max_wait, retry_after_max=self._max_wait
            )
            for attempt in stamina.retry_context(on=backoff, attempts=self._max_attempts, timeout=None):
                with attempt:
                    return self._once(operation, method, path, **kwargs)
        raise AssertionError("unreachable: stamina re-raises the last error")  # pragma: no cover

    def _once(self, operation: str, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        started = time.perf_counter()
        outcome = "error"
        try:
            response = self._http.request(method, path, **kwargs)
            outcome = str(response.status_code)
        except limits.DeadlineExceeded as error:
            # Not repeated within the call: its time is up (a POST may also have landed). The job
            # retries later, and a `posting` job looks for its note before posting again.
            SDP_ERRORS.labels(operation, "deadline").inc()
            raise TransientError(f"servicedesk {operation}: {error}", safe_to_repeat=False) from None
        except limits.ResponseTooLarge as error:
            SDP_ERRORS.labels(operation, "too_large").inc()
            raise PermanentError(f"servicedesk {operation}: {error}") from None
        except EgressRefused as error:
            SDP_ERRORS.labels(operation, "refused").inc()
            raise PermanentError(f"servicedesk {operation} refused: {error}") from None
        except httpx.ConnectError as error:
            # Nothing reached the server: safe to repeat even for a POST.
            SDP_ERRORS.labels(operation, "connect").inc()
            raise TransientError(f"servicedesk unreachable: {type(error).__name__}") from None
        except httpx.TimeoutException as error:
            SDP_ERRORS.labels(operation, "timeout").inc()
            raise TransientError(
                f"servicedesk timed out: {type(error).__name__}",
                safe_to_repeat=method == "GET" or isinstance(error, httpx.ConnectTimeout),
            ) from None
        except httpx.TransportError as error:
            SDP_ERRORS.labels(operation, "transport").inc()
            raise TransientError(
                f"servicedesk transport error: {type(error).__name__}", safe_to_repeat=method == "GET"
            ) from None
        finally:
            SDP_LATENCY.labels(operation, outcome).observe(time.perf_counter() - started)
        return self._decode(operation, method, response)

    @staticmethod
    def _decode(operation: str, method: str, response: httpx.Response) -> dict[str, Any]:
        status = response.status_code
        if status == 429 or status >= 500:
            SDP_ERRORS.labels(operation, str(status)).inc()
            raise TransientError(
                f"servicedesk answered {status}",
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
                # A 429 was refused before processing; a 5xx on a POST may or may not have landed.
                safe_to_repeat=status == 429 or method == "GET",
            )
        if status >= 400:
            SDP_ERRORS.labels(operation, str(status)).inc()
            raise PermanentError(f"servicedesk answered {status} to {operation}")
        try:
            payload = response.json()
        except ValueError:
            SDP_ERRORS.labels(operation, "invalid_json").inc()
            raise PermanentError(f"servicedesk {operation} returned non-JSON") from None
        if not isinstance(payload, dict):
            raise PermanentError(f"servicedesk {operation} returned non-object JSON")
        return payload
