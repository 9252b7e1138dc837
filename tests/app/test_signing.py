"""HMAC-SHA256 signature verification (pure functions: no servers needed)."""

from __future__ import annotations

from app.signing import job_request_message, sign, verify

# GitHub's published X-Hub-Signature-256 example (docs: "Validating webhook deliveries").
GITHUB_SECRET = "It's a Secret to Everybody"
GITHUB_PAYLOAD = b"Hello, World!"
GITHUB_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_published_vector_signs_and_verifies() -> None:
    assert sign(GITHUB_SECRET, GITHUB_PAYLOAD) == GITHUB_SIGNATURE
    assert verify(GITHUB_SIGNATURE, GITHUB_PAYLOAD, [GITHUB_SECRET])


def test_uppercase_hex_is_accepted() -> None:
    assert verify(GITHUB_SIGNATURE.upper().replace("SHA256=", "sha256="), GITHUB_PAYLOAD, [GITHUB_SECRET])


def test_any_current_secret_verifies_during_rotation() -> None:
    old, new = "old-secret-0123456789", "new-secret-0123456789"
    body = b'{"ticket_id": "1"}'
    assert verify(sign(old, body), body, [new, old])
    assert verify(sign(new, body), body, [new, old])
    assert not verify(sign(old, body), body, [new])


def test_rejections() -> None:
    assert not verify(None, GITHUB_PAYLOAD, [GITHUB_SECRET])
    assert not verify("", GITHUB_PAYLOAD, [GITHUB_SECRET])
    assert not verify(GITHUB_SIGNATURE.removeprefix("sha256="), GITHUB_PAYLOAD, [GITHUB_SECRET])
    assert not verify("sha1=" + GITHUB_SIGNATURE[7:], GITHUB_PAYLOAD, [GITHUB_SECRET])
    assert not verify(GITHUB_SIGNATURE, GITHUB_PAYLOAD + b" ", [GITHUB_SECRET])
    assert not verify(GITHUB_SIGNATURE, GITHUB_PAYLOAD, [])
    assert not verify("sha256=zz", GITHUB_PAYLOAD, [GITHUB_SECRET])


def test_job_read_message_is_timestamp_method_and_path_on_their_own_lines() -> None:
    assert job_request_message("1700000000", "get", "/api/v1/jobs/42") == b"1700000000\nGET\n/api/v1/jobs/42"
