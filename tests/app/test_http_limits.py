"""Deadlines and response caps of the outbound clients, against the fake upstreams on loopback.

A trickling upstream sends one byte at a time, status line and headers included, each byte well within
the read timeout: only a wall-clock deadline stops it. A huge one sends 50 MB: only the cap stops it.
"""

from __future__ import annotations

import gzip
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from app.clients import limits
from app.clients.errors import PermanentError, TransientError
from app.clients.llm import LLMClient
from app.clients.servicedesk import ServiceDeskClient, Ticket
from app.db.models import AuthMode
from app.prompts import load_prompt
from app.settings import SettingsError
from app.worker.fairness import DEFER_MAX_SECONDS, TenantSlots, defer_seconds
from harness.fake_llm import FakeLLM
from harness.fake_servicedesk import FakeServiceDesk
from harness.http_fake import PAD, Fault
from harness.stack import LLM_API_KEY
from tests.app.settings_env import LOCAL, load_with

HUGE = 50 * 1024 * 1024
SLACK = 1.5  # seconds of scheduling noise allowed past a deadline on a busy 2-core machine


@pytest.fixture
def instance(fake_servicedesk: FakeServiceDesk) -> str:
    name = f"limits-{uuid.uuid4().hex[:8]}"
    fake_servicedesk.add_instance(name, "authtoken", "credential")
    return name


@pytest.fixture
def sdp(fake_servicedesk: FakeServiceDesk, instance: str) -> Iterator[Callable[..., ServiceDeskClient]]:
    clients: list[ServiceDeskClient] = []

    def make(**options: Any) -> ServiceDeskClient:
        settings = {"timeout": 5.0, "max_attempts": 2, "max_wait": 0.5, "allow_loopback": True, **options}
        client = ServiceDeskClient(
            fake_servicedesk.base_url(instance), AuthMode.AUTHTOKEN, "credential", **settings
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def _ticket(fake: FakeServiceDesk, instance: str) -> str:
    ticket = f"T{uuid.uuid4().hex[:10]}"
    fake.add_ticket(instance, ticket, "VPN down", "It broke.")
    return ticket


def _timed(call: Callable[[], object]) -> tuple[BaseException, float]:
    started = time.monotonic()
    with pytest.raises((TransientError, PermanentError)) as error:
        call()
    return error.value, time.monotonic() - started


def test_a_trickling_answer_is_cut_at_the_call_deadline(
    sdp: Callable[..., ServiceDeskClient], fake_servicedesk: FakeServiceDesk, instance: str
) -> None:
    ticket = _ticket(fake_servicedesk, instance)
    fake_servicedesk.add_fault(f"GET request {ticket}", Fault(after=True, trickle=0.5), times=5)
    error, took = _timed(lambda: sdp(call_deadline=2.0).get_ticket(ticket))
    assert isinstance(error, TransientError)
    assert str(error) == "servicedesk get_ticket: call deadline (2 s) exceeded"
    assert not error.safe_to_repeat  # the call's time is up: not repeated within it
    assert 2.0 <= took < 2.0 + SLACK
    fake_servicedesk.clear_faults(f"GET request {ticket}")


def test_the_job_deadline_clips_every_call(
    sdp: Callable[..., ServiceDeskClient], fake_servicedesk: FakeServiceDesk, instance: str
) -> None:
    ticket = _ticket(fake_servicedesk, instance)
    fake_servicedesk.add_fault(f"GET request {ticket}", Fault(after=True, trickle=0.5), times=5)
    with limits.deadline(1.5, "job deadline"):
        error, took = _timed(lambda: sdp(call_deadline=60).get_ticket(ticket))
        assert str(error) == "servicedesk get_ticket: job deadline (1.5 s) exceeded"
        assert 1.5 <= took < 1.5 + SLACK
        # Spent: the next call fails at once, without a request.
        before = len(fake_servicedesk.requests)
        error, took = _timed(lambda: sdp().get_ticket(ticket))
        assert "job deadline (1.5 s) exceeded" in str(error)
        assert took < SLACK
        assert len(fake_servicedesk.requests) == before
    fake_servicedesk.clear_faults(f"GET request {ticket}")


def test_a_silent_upstream_is_cut_at_the_deadline_not_the_read_timeout(
    sdp: Callable[..., ServiceDeskClient], fake_servicedesk: FakeServiceDesk, instance: str
) -> None:
    ticket = _ticket(fake_servicedesk, instance)
    fake_servicedesk.add_fault(f"GET request {ticket}", Fault(after=True, delay=10), times=1)
    error, took = _timed(lambda: sdp(timeout=30.0, call_deadline=1.0).get_ticket(ticket))
    assert str(error) == "servicedesk get_ticket: call deadline (1 s) exceeded"
    assert took < 1.0 + SLACK


def test_a_retry_wait_that_would_outlast_the_deadline_is_not_waited(
    sdp: Callable[..., ServiceDeskClient], fake_servicedesk: FakeServiceDesk, instance: str
) -> None:
    ticket = _ticket(fake_servicedesk, instance)
    busy = Fault(503, {"Retry-After": "30"}, {"response_status": {"status_code": 5000}})
    fake_servicedesk.add_fault(f"GET request {ticket}", busy, times=2)
    error, took = _timed(lambda: sdp(max_wait=60, call_deadline=5).get_ticket(ticket))
    assert isinstance(error, TransientError)
    assert str(error) == "servicedesk answered 503"
    assert error.retry_after == 30  # the job's retry honours it instead
    assert took < SLACK
    fake_servicedesk.clear_faults(f"GET request {ticket}")


def test_a_backoff_that_fits_the_deadline_is_waited(
    sdp: Callable[..., ServiceDeskClient], fake_servicedesk: FakeServiceDesk, instance: str
) -> None:
    """The longest possible wait (30 s) would not fit 5 s, but this one (0.5-1.5 s) does."""
    ticket = _ticket(fake_servicedesk, instance)
    busy = Fault(503, {}, {"response_status": {"status_code": 5000}})
    fake_servicedesk.add_fault(f"GET request {ticket}", busy, times=1)
    started = time.monotonic()
    assert sdp(max_wait=30, call_deadline=5).get_ticket(ticket).subject == "VPN down"
    assert time.monotonic() - started < 5
    assert sum(1 for r in fake_servicedesk.requests if ticket in r["path"]) == 2


def test_a_huge_answer_is_cut_at_the_cap(
    sdp: Callable[..., ServiceDeskClient], fake_servicedesk: FakeServiceDesk, instance: str
) -> None:
    ticket = _ticket(fake_servicedesk, instance)
    body = {"request": {"id": ticket, "subject": "VPN down", "description": PAD}}
    fake_servicedesk.add_fault(f"GET request {ticket}", Fault(200, {}, body, huge=HUGE), times=2)
    error, took = _timed(lambda: sdp().get_ticket(ticket))
    assert isinstance(error, PermanentError)  # the same answer would come back: not retried
    assert str(error) == "servicedesk get_ticket: response body larger than the 1048576-byte cap"
    assert took < 5
    assert sum(1 for r in fake_servicedesk.requests if ticket in r["path"]) == 1
    fake_servicedesk.clear_faults(f"GET request {ticket}")


def test_a_compressed_answer_is_refused(
    sdp: Callable[..., ServiceDeskClient], fake_servicedesk: FakeServiceDesk, instance: str
) -> None:
    """50 MB inflated from 50 KB: the cap would only see it after one chunk inflated to tens of MB."""
    ticket = _ticket(fake_servicedesk, instance)
    bomb = Fault(200, {"Content-Encoding": "gzip"}, gzip.compress(b" " * HUGE))
    fake_servicedesk.add_fault(f"GET request {ticket}", bomb, times=1)
    error, _ = _timed(lambda: sdp().get_ticket(ticket))
    assert isinstance(error, PermanentError)
    assert "compressed (gzip)" in str(error)
    assert fake_servicedesk.requests[-1]["headers"]["Accept-Encoding"] == "identity"


def test_answers_within_the_limits_pass(
    sdp: Callable[..., ServiceDeskClient], fake_servicedesk: FakeServiceDesk, instance: str
) -> None:
    ticket = _ticket(fake_servicedesk, instance)
    big = {"request": {"id": ticket, "subject": "VPN down", "description": PAD}}
    fake_servicedesk.add_fault(f"GET request {ticket}", Fault(200, {}, big, huge=1024 * 1024 - 1), times=1)
    assert len(sdp().get_ticket(ticket).description) > 1_000_000
    fake_servicedesk.add_fault(f"GET request {ticket}", Fault(after=True, trickle=0.01), times=1)
    with limits.deadline(30, "job deadline"):
        assert sdp(call_deadline=20).get_ticket(ticket).subject == "VPN down"


# The LLM client, through the same transport.


@pytest.fixture
def llm(fake_llm: FakeLLM) -> Iterator[Callable[..., LLMClient]]:
    clients: list[LLMClient] = []

    def make(**options: Any) -> LLMClient:
        settings = {"timeout": 5.0, "max_retries": 1, "max_tokens": 200, "temperature": 0.0, **options}
        client = LLMClient(
            base_url=fake_llm.base_url, api_key=lambda: LLM_API_KEY, model="test-model", **settings
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def _llm_ticket() -> Ticket:
    return Ticket(id=f"L{uuid.uuid4().hex[:10]}", subject="VPN down", description="It broke.")


def test_llm_a_huge_completion_is_cut_at_the_cap(llm: Callable[..., LLMClient], fake_llm: FakeLLM) -> None:
    ticket = _llm_ticket()
    completion = {
        "id": "chatcmpl-huge",
        "object": "chat.completion",
        "created": 0,
        "model": "test-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": PAD}, "finish_reason": "stop"}],
    }
    fake_llm.add_fault(ticket.id, Fault(200, {}, completion, huge=HUGE), times=2)
    error, took = _timed(lambda: llm().enhance(ticket, load_prompt("v1")))
    assert isinstance(error, PermanentError)
    assert str(error) == "llm: response body larger than the 1048576-byte cap"
    assert took < 5
    assert sum(1 for r in fake_llm.requests if ticket.id.encode() in r["body"]) == 1
    fake_llm.clear_faults(ticket.id)


def test_llm_a_trickling_completion_is_cut_at_the_deadline(
    llm: Callable[..., LLMClient], fake_llm: FakeLLM
) -> None:
    ticket = _llm_ticket()
    fake_llm.add_fault(ticket.id, Fault(after=True, trickle=0.5), times=3)
    error, took = _timed(lambda: llm(call_deadline=2.0).enhance(ticket, load_prompt("v1")))
    assert isinstance(error, TransientError)
    assert str(error) == "llm: call deadline (2 s) exceeded"
    assert 2.0 <= took < 2.0 + SLACK
    fake_llm.clear_faults(ticket.id)


def test_llm_retries_stay_within_the_deadline(llm: Callable[..., LLMClient], fake_llm: FakeLLM) -> None:
    ticket = _llm_ticket()
    fake_llm.add_fault(ticket.id, Fault(500, {}, {"error": {"message": "boom"}}), times=1)
    assert llm().enhance(ticket, load_prompt("v1")).summary  # one retry, then the answer
    assert sum(1 for r in fake_llm.requests if ticket.id.encode() in r["body"]) == 2

    ticket = _llm_ticket()
    fake_llm.add_fault(ticket.id, Fault(429, {"Retry-After": "30"}, {"error": {"message": "rate"}}), times=2)
    error, took = _timed(lambda: llm(call_deadline=5).enhance(ticket, load_prompt("v1")))
    assert str(error) == "llm answered 429"
    assert took < SLACK  # 30 s would outlast the 5 s deadline: the job retries later instead
    fake_llm.clear_faults(ticket.id)


# Settings and the tenant share.


def test_the_lease_outlives_the_job_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_with(monkeypatch, LOCAL)
    assert settings.job_deadline == settings.task_soft_time_limit_seconds == 240
    assert settings.job_lease_seconds == settings.task_time_limit_seconds + 5 == 305
    assert settings.job_lease_seconds > settings.job_deadline
    assert load_with(monkeypatch, {**LOCAL, "JOB_DEADLINE_SECONDS": "120"}).job_deadline == 120
    with pytest.raises(SettingsError, match=r"JOB_DEADLINE_SECONDS .* must be below TASK_TIME_LIMIT_SECONDS"):
        load_with(monkeypatch, {**LOCAL, "JOB_DEADLINE_SECONDS": "300"})


def test_the_tenant_share_defaults_to_half_the_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_with(monkeypatch, {**LOCAL, "WORKER_CONCURRENCY": "8"}).tenant_concurrency == 4
    assert load_with(monkeypatch, {**LOCAL, "WORKER_CONCURRENCY": "1"}).tenant_concurrency == 1
    assert load_with(monkeypatch, {**LOCAL, "TENANT_MAX_CONCURRENCY": "3"}).tenant_concurrency == 3
    many = {**LOCAL, "WORKER_CONCURRENCY": "4", "TENANT_MAX_CONCURRENCY": "64"}
    assert load_with(monkeypatch, many).tenant_concurrency == 4


def test_tenant_slots_and_put_back_delays() -> None:
    slots = TenantSlots(2)
    assert slots.try_acquire("a") and slots.try_acquire("a")
    assert not slots.try_acquire("a")
    assert slots.try_acquire("b")
    slots.release("a")
    assert slots.running("a") == 1 and slots.try_acquire("a")
    assert 0.25 <= defer_seconds(0) <= 0.5
    assert all(DEFER_MAX_SECONDS / 2 <= defer_seconds(n) <= DEFER_MAX_SECONDS for n in (5, 50, 10_000))
