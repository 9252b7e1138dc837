"""What app/tracing.py does to a span before export, and which exporters the OTEL_* variables select,
in-process (the end-to-end run is tests/app/test_tracing.py): the paths a normal delivery does not take
(an exception, a URL with a query) are driven here on purpose."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from app import tracing
from app.log import configure_logging, get_logger

TICKET_TEXT = "the CFO's laptop password is on a sticky note"
TOKEN = "1000.refresh-token-value-0123456789"


@pytest.fixture
def exported() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(tracing.PrivateSpans(SimpleSpanProcessor(exporter)))
    yield provider, exporter
    provider.shutdown()


def test_exception_messages_and_error_descriptions_are_not_exported(
    exported: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = exported
    with provider.get_tracer("t").start_as_current_span("run/app.enhance_ticket") as span:
        span.record_exception(ValueError(f"Failing row contains ({TICKET_TEXT})"))
        span.set_status(Status(StatusCode.ERROR, f"IntegrityError: {TICKET_TEXT}"))
    (finished,) = exporter.get_finished_spans()
    assert finished.status.status_code is StatusCode.ERROR
    assert finished.status.description is None
    (event,) = finished.events
    assert event.name == "exception"
    assert dict(event.attributes or {}) == {"exception.type": "ValueError", "exception.escaped": "False"}
    assert TICKET_TEXT not in repr(finished.to_json())


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("http.url", f"https://accounts.zoho.eu/oauth/v2/token?refresh_token={TOKEN}&grant_type=x", "https://accounts.zoho.eu/oauth/v2/token"),
        ("url.full", "https://user:pw@sdp.example:8443/api/v3/requests/7/notes?input_data=%7B%7D#f", "https://sdp.example:8443/api/v3/requests/7/notes"),
        ("http.target", f"/webhook/servicedesk?token={TOKEN}", "/webhook/servicedesk"),
        ("http.target", "/api/v1/jobs/abc", "/api/v1/jobs/abc"),
    ],
)  # fmt: skip
def test_url_queries_and_user_info_are_cut(
    exported: tuple[TracerProvider, InMemorySpanExporter], key: str, value: str, expected: str
) -> None:
    provider, exporter = exported
    attributes = {key: value, "url.query": f"token={TOKEN}", "http.status_code": 200}
    provider.get_tracer("t").start_span("GET", kind=SpanKind.CLIENT, attributes=attributes).end()
    (finished,) = exporter.get_finished_spans()
    assert dict(finished.attributes or {}) == {key: expected, "http.status_code": 200}


def test_no_endpoint_means_no_exporter_and_console_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_EXPORTER"):
        monkeypatch.delenv(name, raising=False)
    assert tracing._exporters() == []
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "  ")
    assert tracing._exporters() == []
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp,console")
    kinds = [type(exporter).__name__ for exporter in tracing._exporters()]
    assert kinds == ["OTLPSpanExporter", "ConsoleSpanExporter"]

    out = io.StringIO()
    provider = TracerProvider(resource=tracing._resource(tracing.WORKER_SERVICE))
    provider.add_span_processor(
        SimpleSpanProcessor(ConsoleSpanExporter(out=out, formatter=tracing._one_line))
    )
    with provider.get_tracer("t").start_as_current_span("run/app.enhance_ticket"):
        provider.get_tracer("t").start_span("post note").end()
    lines = out.getvalue().splitlines()
    assert [
        line.endswith(name)
        for line, name in zip(lines, (" post note", " run/app.enhance_ticket"), strict=True)
    ] == [True, True]
    assert all(line.startswith("span ai-agents-worker trace=") for line in lines)


def test_the_service_name_defaults_but_the_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=staging")
    resource = tracing._resource(tracing.API_SERVICE).attributes
    assert (resource["service.name"], resource["deployment.environment"]) == ("ai-agents-api", "staging")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "api-canary")
    assert tracing._resource(tracing.API_SERVICE).attributes["service.name"] == "api-canary"


def test_log_lines_inside_a_span_carry_its_ids(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO")
    provider = TracerProvider()
    log = get_logger("t")
    try:
        with provider.get_tracer("t").start_as_current_span("s") as span:
            log.info("inside")
            logging.getLogger("foreign").warning("inside too")
        log.info("outside")
    finally:
        provider.shutdown()
    records = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    context = span.get_span_context()
    ids = {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}
    inside = [{k: r.get(k) for k in ids} for r in records if r["event"] != "outside"]
    assert inside == [ids, ids]
    assert "trace_id" not in next(r for r in records if r["event"] == "outside")


@pytest.mark.parametrize(
    "answer",
    [
        {"unexpected": True},  # a JSON object that is no completion: choices and usage absent
        {"choices": None, "model": 7, "usage": {"prompt_tokens": "many"}},
        {"choices": [{"finish_reason": 3}], "usage": None},
    ],
)
def test_an_answer_that_is_no_completion_adds_no_attributes_and_raises_nothing(
    exported: tuple[TracerProvider, InMemorySpanExporter], answer: dict[str, object]
) -> None:
    """The SDK builds completions without validating them; the chat span must not turn a bad answer
    into a TypeError (the job would fail as 'unexpected error' instead of naming the LLM)."""
    from openai._models import construct_type  # the SDK's own unvalidated construction
    from openai.types.chat import ChatCompletion

    from app.clients.llm import _describe  # pyright: ignore[reportPrivateUsage]

    provider, exporter = exported
    completion = construct_type(type_=ChatCompletion, value=answer)
    with provider.get_tracer("test").start_as_current_span("chat") as span:
        _describe(span, completion)  # pyright: ignore[reportArgumentType]
    (finished,) = exporter.get_finished_spans()
    assert not [key for key in finished.attributes or {} if key.startswith("gen_ai.")]
