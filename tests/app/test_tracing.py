"""Tracing with the real processes: one signed webhook through the API, Redis, the Celery worker, the fake
ServiceDesk Plus and LLM, exported over OTLP/HTTP to a loopback receiver (harness/otlp_receiver.py).

This module starts its own API and worker (the suite's shared ones export nowhere), on a database and a
Redis database of their own, so the shared worker cannot take this module's job and no other test's job
lands in this trace. One delivery, made once, is what every test here reads.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest

from harness.fake_llm import FakeLLM
from harness.fake_servicedesk import FakeServiceDesk
from harness.moto_server import MotoServer
from harness.otlp_receiver import OtlpReceiver, ReceivedSpan
from harness.postgres import PostgresServer
from harness.processes import ApiProcess, WorkerProcess
from harness.redis_server import RedisServer
from harness.stack import LLM_API_KEY, Stack, TenantFixture

# Every span of the delivery is exported within a second of its end (the batch processor's delay is
# lowered below); the whole run, worker included, fits well within this.
TRACE_TIMEOUT = 60


@dataclass(frozen=True)
class Delivery:
    stack: Stack
    tenant: TenantFixture
    api: ApiProcess
    worker: WorkerProcess
    receiver: OtlpReceiver
    trace_id: str
    ticket_subject: str
    ticket_description: str
    signature: str
    prompt: list[str]  # the messages the worker sent to the LLM


def _tracing_env(receiver: OtlpReceiver) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=test",
        "OTEL_TRACES_SAMPLER": "parentbased_always_on",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }


@pytest.fixture(scope="module")
def delivery(
    postgres: PostgresServer,
    redis_server: RedisServer,
    moto: MotoServer,
    fake_servicedesk: FakeServiceDesk,
    fake_llm: FakeLLM,
) -> Iterator[Delivery]:
    receiver = OtlpReceiver().start()
    stack = Stack.create(
        postgres, redis_server, moto, fake_servicedesk, fake_llm, database=f"tracing_{uuid.uuid4().hex[:8]}"
    )
    # Redis database 1: the queue of this module's worker alone.
    stack.env["REDIS_URL"] = redis_server.url.rsplit("/", 1)[0] + "/1"
    stack.migrate()
    tenant = stack.add_tenant(f"traced-{uuid.uuid4().hex[:6]}")
    env = {**stack.env, **_tracing_env(receiver)}
    api = ApiProcess({**env, "OTEL_SERVICE_NAME": "ai-agents-api"})
    worker = WorkerProcess({**env, "OTEL_SERVICE_NAME": "ai-agents-worker"})
    try:
        api.start_ready()
        worker.start()
        worker.wait_ready()
        marker = uuid.uuid4().hex
        subject = f"Printer on fire {marker}"
        description = f"Ticket text that must stay private {marker}: the toner smells of {uuid.uuid4().hex}"
        ticket_id = f"T{uuid.uuid4().hex[:12]}"
        fake_servicedesk.add_ticket(tenant.instance, ticket_id, subject, description)
        body = stack.payload(ticket_id)
        headers = stack.webhook_headers(tenant, body)
        with httpx.Client(base_url=api.url, timeout=15) as client:
            response = client.post("/webhook/servicedesk", content=body, headers=headers)
        assert response.status_code == 202, response.text
        job = stack.wait_for_job(response.json()["job_id"])
        assert job["status"] == "succeeded", job
        prompt = next(
            [str(m["content"]) for m in request["messages"]]
            for request in fake_llm.completions
            if ticket_id in json.dumps(request["messages"])
        )
        receiver.wait_for(
            lambda spans: _server_span_or_none(spans) is not None, TRACE_TIMEOUT, what="the API's span"
        )
        server = _server_span_or_none(receiver.spans())
        assert server is not None
        # The task's span ends last in the worker (after the note's); the publish's, last in the API.
        receiver.wait_for(
            lambda spans: (
                {"CONSUMER", "PRODUCER"} <= {s.kind for s in spans if s.trace_id == server.trace_id}
            ),
            TRACE_TIMEOUT,
            what="the publish and the task spans",
        )
        yield Delivery(
            stack,
            tenant,
            api,
            worker,
            receiver,
            server.trace_id,
            subject,
            description,
            headers["X-ServiceDesk-Signature"],
            prompt,
        )
    finally:
        worker.stop()
        api.stop()
        receiver.stop()
        stack.close()


def _server_span_or_none(spans: list[ReceivedSpan]) -> ReceivedSpan | None:
    return next(
        (s for s in spans if s.kind == "SERVER" and s.attributes.get("http.route") == "/webhook/servicedesk"),
        None,
    )


def _ancestry(span: ReceivedSpan, by_id: dict[str, ReceivedSpan]) -> list[ReceivedSpan]:
    """`span`, its parent, its parent's parent... up to the root (or a parent that never arrived)."""
    chain = [span]
    while chain[-1].parent_span_id and chain[-1].parent_span_id in by_id:
        chain.append(by_id[chain[-1].parent_span_id])
    return chain


def _one(spans: list[ReceivedSpan], what: str, match: Callable[[ReceivedSpan], bool]) -> ReceivedSpan:
    found = [s for s in spans if match(s)]
    assert found, f"no {what} span in {[(s.service, s.kind, s.name) for s in spans]}"
    return found[0]


def test_one_webhook_is_one_trace_from_the_request_to_the_note(delivery: Delivery) -> None:
    spans = delivery.receiver.trace(delivery.trace_id)
    by_id = {s.span_id: s for s in spans}
    server = _one(spans, "API server", lambda s: s.kind == "SERVER" and s.service == "ai-agents-api")
    assert server.parent_span_id == ""
    assert server.resource["deployment.environment"] == "test"

    def under(span: ReceivedSpan, ancestor: ReceivedSpan) -> bool:
        return ancestor in _ancestry(span, by_id)[1:]

    ingest = _one(spans, "ingest statement", lambda s: s.name == "SELECT app_accept_delivery")
    assert ingest.service == "ai-agents-api" and ingest.kind == "CLIENT" and under(ingest, server)
    publish = _one(spans, "publish", lambda s: s.kind == "PRODUCER" and s.service == "ai-agents-api")
    assert publish.name == "apply_async/app.enhance_ticket" and under(publish, server)

    # Across the broker: the task's span is the publish span's child, in the worker.
    task = _one(spans, "task", lambda s: s.kind == "CONSUMER")
    assert task.service == "ai-agents-worker" and task.name == "run/app.enhance_ticket"
    assert task.parent_span_id == publish.span_id

    worker_spans = [s for s in spans if s.service == "ai-agents-worker"]
    assert all(s is task or under(s, task) for s in worker_spans)
    database = _one(worker_spans, "worker database", lambda s: s.scope.endswith("sqlalchemy"))
    assert database.kind == "CLIENT" and database.attributes["db.system"] == "postgresql"

    def http_to(port: int) -> list[ReceivedSpan]:
        return [
            s
            for s in worker_spans
            if s.scope.endswith("httpx") and f":{port}/" in str(s.attributes.get("http.url", ""))
        ]

    sdp_calls = http_to(delivery.stack.servicedesk.port)
    assert {s.name for s in sdp_calls} >= {"GET", "POST"}
    llm_calls = http_to(delivery.stack.llm.port)
    assert [s.name for s in llm_calls] == ["POST"]

    chat = by_id[llm_calls[0].parent_span_id]
    assert chat.name == "chat test-model" and chat.kind == "CLIENT"
    usage = delivery.stack.llm.usage
    assert chat.attributes["gen_ai.operation.name"] == "chat"
    assert chat.attributes["gen_ai.request.model"] == "test-model"
    assert chat.attributes["gen_ai.usage.input_tokens"] == usage["prompt_tokens"]
    assert chat.attributes["gen_ai.usage.output_tokens"] == usage["completion_tokens"]
    assert chat.attributes["gen_ai.usage.total_tokens"] == usage["total_tokens"]

    note = _one(worker_spans, "note", lambda s: s.name == "post note")
    posts = [s for s in sdp_calls if s.name == "POST"]
    assert any(s.parent_span_id == note.span_id for s in posts)
    assert str(posts[0].attributes["http.url"]).endswith("/notes")


def test_no_secret_or_ticket_text_in_any_exported_span(delivery: Delivery) -> None:
    """Every span both services exported in this module's run (the delivery's and any other), every
    attribute, event and resource value, against what must never leave the process."""
    private = {
        "webhook secret": delivery.tenant.webhook_secret,
        "webhook signature": delivery.signature,
        "LLM API key": LLM_API_KEY,
        "ServiceDesk Plus credential": delivery.tenant.credential,
        "ticket subject": delivery.ticket_subject,
        "ticket description": delivery.ticket_description,
        **{f"prompt message {n}": text for n, text in enumerate(delivery.prompt)},
    }
    # The prompt's messages are long; a leak of any part of them is a leak: every line of them too.
    for n, text in enumerate(delivery.prompt):
        for m, line in enumerate(line for line in text.splitlines() if len(line.strip()) >= 24):
            private[f"prompt message {n} line {m}"] = line.strip()
    spans = delivery.receiver.spans()
    assert {s.service for s in spans} == {"ai-agents-api", "ai-agents-worker"}
    leaks = sorted(
        f"{what} in {span.service} span {span.name!r}"
        for span in spans
        for value in span.strings()
        for what, secret in private.items()
        if secret in value
    )
    assert leaks == []


def test_both_services_log_the_trace_id(delivery: Delivery) -> None:
    def events_with_trace(text: str) -> set[str]:
        events = set()
        for line in text.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("trace_id") == delivery.trace_id:
                assert len(str(record.get("span_id", ""))) == 16
                events.add(str(record.get("event")))
        return events

    assert "request" in events_with_trace(delivery.api.logs())  # the access log line
    assert "job_succeeded" in events_with_trace(delivery.worker.logs())
