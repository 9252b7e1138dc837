"""What the LLM may answer besides a clean JSON object, and what the request asks of it.

The fake LLM checks `response_format` as OpenAI's API does and answers, per ticket, fenced JSON, an
answer cut at `max_tokens` or a refusal. Fenced JSON is parsed (some OpenAI-compatible servers fence
despite JSON mode); a cut answer and a refusal fail the job at once with the reason and post no note:
the same prompt would be cut or refused again, so a retry would only bill it twice.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import pytest

from app.clients.errors import PermanentError
from app.clients.llm import Enhancement, LLMClient
from app.clients.servicedesk import Ticket
from app.prompts import load_prompt
from harness.fake_llm import DEFAULT_ENHANCEMENT, FENCED, REFUSAL, REFUSED, TRUNCATED, FakeLLM
from harness.fake_servicedesk import FakeServiceDesk
from harness.stack import LLM_API_KEY, Stack, TenantFixture


@pytest.fixture(scope="module")
def llm(fake_llm: FakeLLM) -> Iterator[LLMClient]:
    client = LLMClient(
        base_url=fake_llm.base_url,
        api_key=lambda: LLM_API_KEY,
        model="test-model",
        timeout=5.0,
        max_retries=2,
        max_tokens=200,
        temperature=0.0,
    )
    yield client
    client.close()


@pytest.fixture
def ticket(fake_llm: FakeLLM) -> Iterator[Ticket]:
    ticket = Ticket(id=f"L{uuid.uuid4().hex[:10]}", subject="VPN down", description="It broke.")
    yield ticket
    fake_llm.clear_shape(ticket.id)


def _requests_for(fake_llm: FakeLLM, ticket_id: str) -> list[dict[str, object]]:
    return [c for c in fake_llm.completions if ticket_id in json.dumps(c["messages"])]


def test_the_request_asks_for_a_json_object(llm: LLMClient, fake_llm: FakeLLM, ticket: Ticket) -> None:
    """JSON mode, which the real API grants only to messages that mention JSON (the fake checks it)."""
    assert llm.enhance(ticket, load_prompt("v1")) == Enhancement.model_validate(DEFAULT_ENHANCEMENT)
    (request,) = _requests_for(fake_llm, ticket.id)
    assert request["response_format"] == {"type": "json_object"}
    assert request["max_tokens"] == 200


def test_a_fenced_answer_is_parsed(llm: LLMClient, fake_llm: FakeLLM, ticket: Ticket) -> None:
    fake_llm.shape(ticket.id, FENCED)
    assert llm.enhance(ticket, load_prompt("v1")) == Enhancement.model_validate(DEFAULT_ENHANCEMENT)


@pytest.mark.parametrize(
    ("shape", "reason"),
    [
        (TRUNCATED, "llm output was cut at LLM_MAX_TOKENS (finish_reason=length)"),
        (REFUSED, "llm refused to answer (finish_reason=stop)"),
    ],
)
def test_a_cut_or_refused_answer_is_permanent_and_not_retried(
    llm: LLMClient, fake_llm: FakeLLM, ticket: Ticket, shape: str, reason: str
) -> None:
    fake_llm.shape(ticket.id, shape)
    with pytest.raises(PermanentError) as error:
        llm.enhance(ticket, load_prompt("v1"))
    assert str(error.value) == reason
    assert REFUSAL not in str(error.value)
    assert len(_requests_for(fake_llm, ticket.id)) == 1


@pytest.mark.usefixtures("worker")
@pytest.mark.parametrize(
    ("shape", "status", "error"),
    [
        (FENCED, "succeeded", None),
        (TRUNCATED, "failed", "llm output was cut at LLM_MAX_TOKENS (finish_reason=length)"),
        (REFUSED, "failed", "llm refused to answer (finish_reason=stop)"),
    ],
)
def test_the_worker_ends_each_answer_shape(
    stack: Stack,
    client: httpx.Client,
    tenant_a: TenantFixture,
    fake_llm: FakeLLM,
    fake_servicedesk: FakeServiceDesk,
    shape: str,
    status: str,
    error: str | None,
) -> None:
    ticket = stack.new_ticket(tenant_a)
    fake_llm.shape(ticket, shape)
    try:
        response = stack.post_webhook(client, tenant_a, ticket)
        assert response.status_code == 202
        job = stack.wait_for_job(response.json()["job_id"])
    finally:
        fake_llm.clear_shape(ticket)
    assert (job["status"], job["error"], job["attempts"]) == (status, error, 1)
    notes = fake_servicedesk.notes_for(tenant_a.instance, ticket)
    assert len(notes) == (1 if status == "succeeded" else 0)
    assert len(_requests_for(fake_llm, ticket)) == 1
