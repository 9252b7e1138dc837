"""A fake ServiceDesk Plus (REST API v3) that checks the wire format strictly and records notes.

One server hosts several instances (one per tenant) under path prefixes: `base_url(instance)`.
A request that breaks the format gets a 400 and is recorded in `violations`, so a test can assert
both that the note landed and that nothing malformed was sent.

An `oauth` instance given a grant (`grant_oauth`) is ServiceDesk Plus Cloud: it also plays the Zoho
accounts server at `accounts_url(instance)`, issuing access tokens for the refresh token, and accepts
only tokens it issued and has not expired (`expire_tokens`: what an hour, or a revocation, does).
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

from harness.http_fake import FakeServer, Reply

ACCEPT = "application/vnd.manageengine.sdp.v3+json"
_TOKEN = re.compile(r"^/(?P<instance>[^/]+)/oauth/v2/token$")
_PATH = re.compile(r"^/(?P<instance>[^/]+)/api/v3/requests/(?P<ticket>[^/?]+)(?P<notes>/notes)?(?:\?.*)?$")


@dataclass
class Grant:
    """The OAuth client and refresh token a cloud instance accepts, and what it has issued."""

    client_id: str
    client_secret: str
    refresh_token: str
    lifetime: int = 3600  # Zoho's access tokens live an hour
    issued: set[str] = field(default_factory=set)
    token_requests: int = 0
    refused: int = 0  # API calls answered 401 (a token expired, revoked or never issued)


@dataclass
class Instance:
    name: str
    auth_mode: str  # authtoken | oauth
    credential: str
    tickets: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    grant: Grant | None = None

    def auth_ok(self, headers: dict[str, str]) -> bool:
        if self.auth_mode == "oauth":
            scheme, _, token = headers.get("authorization", "").partition(" ")
            accepted = self.grant.issued if self.grant is not None else {self.credential}
            return scheme == "Zoho-oauthtoken" and token in accepted and "authtoken" not in headers
        return headers.get("authtoken") == self.credential and "authorization" not in headers


class FakeServiceDesk(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.instances: dict[str, Instance] = {}
        self.violations: list[str] = []
        self._ids = itertools.count(9000)
        self._data_lock = threading.Lock()

    def add_instance(self, name: str, auth_mode: str, credential: str) -> Instance:
        instance = Instance(name, auth_mode, credential)
        self.instances[name] = instance
        return instance

    def base_url(self, instance: str) -> str:
        return f"{self.url}/{instance}"

    def grant_oauth(self, instance: str, client_id: str, client_secret: str, refresh_token: str) -> Grant:
        """Make an `oauth` instance accept only access tokens issued for this refresh token."""
        grant = Grant(client_id, client_secret, refresh_token)
        self.instances[instance].grant = grant
        return grant

    def accounts_url(self, instance: str) -> str:
        return f"{self.url}/{instance}"

    def expire_tokens(self, instance: str) -> None:
        """Every access token issued so far stops working, as an hour later or after a revocation."""
        grant = self.instances[instance].grant
        if grant is not None:
            with self._data_lock:
                grant.issued.clear()

    def add_ticket(self, instance: str, ticket_id: str, subject: str, description: str = "") -> None:
        self.instances[instance].tickets[ticket_id] = {
            "id": ticket_id,
            "subject": subject,
            "description": description,
            "status": {"name": "Open", "id": "2"},
            "priority": {"name": "Medium", "id": "3"},
            "category": None,
            "requester": {"name": "Alex Example", "id": "11"},
        }

    def notes_for(self, instance: str, ticket_id: str) -> list[dict[str, Any]]:
        with self._data_lock:
            return list(self.instances[instance].notes.get(ticket_id, []))

    def fault_key(self, method: str, path: str, body: bytes) -> str:
        match = _PATH.match(path)
        if match is None:
            return super().fault_key(method, path, body)
        kind = "notes" if match["notes"] else "request"
        return f"{method} {kind} {unquote(match['ticket'])}"

    def _violation(self, message: str) -> Reply:
        self.violations.append(message)
        return Reply(
            400, {"response_status": {"status_code": 4000, "status": "failed", "messages": [message]}}
        )

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        token = _TOKEN.match(path)
        if token is not None and method == "POST" and token["instance"] in self.instances:
            return self._issue_token(self.instances[token["instance"]], headers, body)
        match = _PATH.match(path)
        if match is None or match["instance"] not in self.instances:
            return self._violation(f"unexpected path {method} {path}")
        instance = self.instances[match["instance"]]
        if headers.get("accept") != ACCEPT:
            return self._violation(f"Accept header was {headers.get('accept')!r}")
        if not instance.auth_ok(headers):
            if instance.grant is not None:
                with self._data_lock:
                    instance.grant.refused += 1
            return Reply(401, {"response_status": {"status_code": 4001, "status": "failed"}})
        ticket_id = unquote(match["ticket"])
        if ticket_id not in instance.tickets:
            return Reply(404, {"response_status": {"status_code": 4007, "status": "failed"}})
        if match["notes"] and method == "POST":
            return self._add_note(instance, ticket_id, headers, body)
        if match["notes"] and method == "GET":
            return Reply(200, {"notes": self.notes_for(instance.name, ticket_id), "response_status": []})
        if method == "GET":
            return Reply(
                200, {"request": instance.tickets[ticket_id], "response_status": {"status_code": 2000}}
            )
        return self._violation(f"unexpected method {method} {path}")

    def _issue_token(self, instance: Instance, headers: dict[str, str], body: bytes) -> Reply:
        """Zoho accounts' refresh grant: form fields in, `access_token` + `expires_in` or `error` out."""
        grant = instance.grant
        content_type = headers.get("content-type", "").split(";")[0].strip()
        if grant is None or content_type != "application/x-www-form-urlencoded":
            return self._violation(
                f"token request to {instance.name}: no grant or content type {content_type!r}"
            )
        form = {name: values[0] for name, values in parse_qs(body.decode()).items()}
        with self._data_lock:
            grant.token_requests += 1
        if form.get("grant_type") != "refresh_token":
            return Reply(400, {"error": "unsupported_grant_type"})
        if (form.get("client_id"), form.get("client_secret")) != (grant.client_id, grant.client_secret):
            return Reply(400, {"error": "invalid_client"})
        if form.get("refresh_token") != grant.refresh_token:
            return Reply(400, {"error": "invalid_code"})
        access_token = f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"
        with self._data_lock:
            grant.issued.add(access_token)
        return Reply(
            200,
            {
                "access_token": access_token,
                "api_domain": "https://www.zohoapis.com",
                "token_type": "Bearer",
                "expires_in": grant.lifetime,
            },
        )

    def _add_note(self, instance: Instance, ticket_id: str, headers: dict[str, str], body: bytes) -> Reply:
        content_type = headers.get("content-type", "").split(";")[0].strip()
        if content_type != "application/x-www-form-urlencoded":
            return self._violation(f"note content type was {content_type!r}")
        form = parse_qs(body.decode(), strict_parsing=True)
        if set(form) != {"input_data"} or len(form["input_data"]) != 1:
            return self._violation(f"note form fields were {sorted(form)}")
        try:
            note = json.loads(form["input_data"][0])["note"]
        except (ValueError, KeyError, TypeError):
            return self._violation("input_data is not JSON with a `note` object")
        if not isinstance(note.get("description"), str) or not note["description"]:
            return self._violation("note.description missing")
        if note.get("show_to_requester") is not False:
            return self._violation("note.show_to_requester must be false (private note)")
        record = {"id": str(next(self._ids)), "description": note["description"], "show_to_requester": False}
        with self._data_lock:
            instance.notes.setdefault(ticket_id, []).append(record)
        return Reply(201, {"note": record, "response_status": {"status_code": 2000, "status": "success"}})
