"""Every request header the API reads, hostile: a 4xx with a JSON `detail` (or the server's own 400 for
what HTTP itself forbids), never a 5xx, and nothing stored.

Headers read: X-Tenant-ID, X-ServiceDesk-Signature, X-Signature-Timestamp (reads), X-Delivery-ID,
Content-Type, Content-Length (webhook), X-Request-ID (every route, echoed back).
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from harness.fixtures import serve_api
from harness.processes import ApiProcess
from harness.stack import Stack, TenantFixture

LONG = "9" * 5_000
# Values are sent as raw bytes: HTTP carries octets; non-ASCII ones arrive as Latin-1 text.
TEXT_CASES: dict[str, bytes] = {
    "empty": b"",
    "long": LONG.encode(),
    "superscript-digit": "²".encode("latin-1"),  # str.isdigit() says yes, int() says no
    "arabic-digits": "١٢٣".encode(),
    "control": b"a\x01b",
    "inner-spaces": b"a b  c",
    "nul-like": b"\\x00",
    "sql": b"' OR 1=1 --",
}


@pytest.fixture(scope="module")
def api(stack: Stack) -> Iterator[ApiProcess]:
    """An API process of this module's own: the made-up tenant ids it is sent fill no other test's
    caches and spend no other test's look-up budget (app/api/tenant_auth.py)."""
    yield from serve_api(stack)


def _job_path(stack: Stack, client: httpx.Client, tenant: TenantFixture) -> str:
    body = stack.payload(f"T{uuid.uuid4().hex[:10]}")
    response = client.post("/webhook/servicedesk", content=body, headers=stack.webhook_headers(tenant, body))
    return f"/api/v1/jobs/{response.json()['job_id']}"


def _as_bytes(headers: dict[str, str], **hostile: bytes) -> dict[bytes, bytes]:
    """httpx sends str header values as ASCII only; bytes go out as they are."""
    raw = {name.encode(): value.encode() for name, value in headers.items()}
    raw.update({name.replace("_", "-").encode(): value for name, value in hostile.items()})
    return raw


def _forbidden_by_http(value: bytes) -> bool:
    return any(byte < 0x20 and byte != 0x09 for byte in value) or b"\x7f" in value


def _assert_clean_4xx(response: httpx.Response, sent: bytes) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:200])
    if _forbidden_by_http(sent):
        assert response.status_code == 400  # refused by the HTTP parser, before the application
        return
    assert isinstance(response.json()["detail"], str | list)


@pytest.mark.parametrize("case", sorted(TEXT_CASES))
def test_signature_timestamp(case: str, stack: Stack, client: httpx.Client, tenant_a: TenantFixture) -> None:
    path = _job_path(stack, client, tenant_a)
    sent = TEXT_CASES[case]
    headers = _as_bytes(stack.job_headers(tenant_a, path), X_Signature_Timestamp=sent)
    response = client.get(path, headers=headers)
    _assert_clean_4xx(response, sent)
    assert response.status_code in {400, 401}


@pytest.mark.parametrize("timestamp", [LONG[:400], "0" * 400 + str(int(time.time())), "-1", "+1", "1e9"])
def test_signature_timestamp_numbers(
    timestamp: str, stack: Stack, client: httpx.Client, tenant_a: TenantFixture
) -> None:
    path = _job_path(stack, client, tenant_a)
    response = client.get(
        path, headers={**stack.job_headers(tenant_a, path), "X-Signature-Timestamp": timestamp}
    )
    assert response.status_code == 401, response.text


@pytest.mark.parametrize(
    "header", ["X-Tenant-ID", "X-ServiceDesk-Signature", "X-Delivery-ID", "X-Request-ID"]
)
@pytest.mark.parametrize("case", sorted(TEXT_CASES))
def test_webhook_headers(
    header: str, case: str, stack: Stack, client: httpx.Client, tenant_a: TenantFixture
) -> None:
    body = stack.payload(f"T{uuid.uuid4().hex[:10]}")
    before = stack.job_count("tenant-a")
    sent = TEXT_CASES[case]
    headers = _as_bytes(stack.webhook_headers(tenant_a, body), **{header.replace("-", "_"): sent})
    response = client.post("/webhook/servicedesk", content=body, headers=headers)
    if header == "X-Request-ID" and not _forbidden_by_http(sent):
        # Not an input of the webhook: a hostile one is replaced, never echoed, and the delivery goes on.
        assert response.status_code == 202, response.text
        assert response.headers["X-Request-ID"].encode() != sent or not sent
        return
    _assert_clean_4xx(response, sent)
    assert stack.job_count("tenant-a") == before


@pytest.mark.parametrize(
    "content_type", [b"", b"application/json\x01", "application/jsön".encode("latin-1"), b"a" * 5000]
)
def test_webhook_content_type(
    content_type: bytes, stack: Stack, client: httpx.Client, tenant_a: TenantFixture
) -> None:
    body = stack.payload(f"T{uuid.uuid4().hex[:10]}")
    headers = _as_bytes(stack.webhook_headers(tenant_a, body), Content_Type=content_type)
    _assert_clean_4xx(client.post("/webhook/servicedesk", content=body, headers=headers), content_type)


@pytest.mark.parametrize("length", [b"abc", b"-1", b"9" * 30, b"1, 2", b""])
def test_webhook_content_length(length: bytes, client: httpx.Client) -> None:
    """Sent on a raw socket: httpx would compute the header itself."""
    address = urlsplit(str(client.base_url))
    request = (
        b"POST /webhook/servicedesk HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + length + b"\r\nConnection: close\r\n\r\n{}"
    )
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(request)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    status = int(reply.split(b" ", 2)[1])
    assert 400 <= status < 500, reply[:300]
