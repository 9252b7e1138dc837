"""OpenTelemetry tracing for the API and the worker: one trace per webhook delivery.

Configured only from the standard OpenTelemetry environment variables, so the cluster's ConfigMap is
the one place that decides (docs/observability.md):

- `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`): OTLP/HTTP protobuf export.
  Unset or empty means no export — unlike the SDK's own default of localhost:4318 — but spans, and so
  trace and span ids for the logs, are still made.
- `OTEL_TRACES_EXPORTER`: `otlp` (the default), `console` (one line per span on stderr, for `make run`),
  `none`, or a comma-separated list of them.
- `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
  `OTEL_SDK_DISABLED`: read by the SDK as documented there.

Private by default: no request or response headers are captured (the instrumentations capture none
unless `OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_*` is set, which the deployment never does), no body
is ever recorded, and every span passes through `private_span` before any exporter sees it: URL query
strings are cut (a ServiceDesk Plus query carries ticket data, an OAuth token request carries the
refresh token), and exception messages, stack traces and error descriptions are dropped, keeping only
the exception's type. A database error quotes the failing row, an HTTP error its URL; the type and the
job's own log line say enough to find the job.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Status, format_span_id, format_trace_id
from opentelemetry.util.types import AttributeValue
from sqlalchemy import Engine

API_SERVICE = "ai-agents-api"
WORKER_SERVICE = "ai-agents-worker"

# Attributes whose value is a URL (or its query): the query is cut, wherever an instrumentation put it.
_URL_KEYS = frozenset({"url.full", "http.url", "http.target"})
_DROPPED_KEYS = frozenset({"url.query"})
# What an exception event keeps: the type names the failure; the message and the stack trace may quote
# a ticket (a failing row, a refusal) or a URL with its query.
_EXCEPTION_KEEP = frozenset({"exception.type", "exception.escaped"})
# Health checks and scrapes: every few seconds, from every kubelet and Prometheus; no trace worth keeping.
EXCLUDED_URLS = "/health,/metrics,/api/v1/ready"

_lock = threading.Lock()
_provider: TracerProvider | None = None
_configured = False


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() == "true"


def _endpoint() -> str:
    return (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    )


def _resource(default_service_name: str) -> Resource:
    resource = Resource.create()  # OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME
    if str(resource.attributes.get(SERVICE_NAME, "unknown_service")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: default_service_name}))
    return resource


def _one_line(span: ReadableSpan) -> str:
    """The console exporter's format: enough to follow a trace by eye in `make run`."""
    context = span.get_span_context()
    parent = format_span_id(span.parent.span_id) if span.parent else "-"
    millis = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
    service = span.resource.attributes.get(SERVICE_NAME, "?")
    trace_id = format_trace_id(context.trace_id) if context else "?"
    span_id = format_span_id(context.span_id) if context else "?"
    return f"span {service} trace={trace_id} span={span_id} parent={parent} {millis:.1f}ms {span.name}\n"


def _exporters() -> list[SpanExporter]:
    exporters: list[SpanExporter] = []
    names = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",")
    for name in (n.strip().lower() for n in names):
        if name == "otlp" and _endpoint():
            # Imported here: a process that exports nothing does not load the exporter's HTTP stack.
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporters.append(OTLPSpanExporter())  # endpoint, headers, timeout from OTEL_EXPORTER_OTLP_*
        elif name == "console":
            exporters.append(ConsoleSpanExporter(out=sys.stderr, formatter=_one_line))
        elif name not in ("otlp", "none", ""):
            sys.stderr.write(f"OTEL_TRACES_EXPORTER: unknown exporter {name!r} ignored\n")
    return exporters


def setup(default_service_name: str) -> TracerProvider | None:
    """The process's tracer provider, made once and installed as the global one; None when
    `OTEL_SDK_DISABLED=true`. A forked child (a prefork pool's) keeps its parent's: the SDK restarts the
    batch processor's export thread in the child (an at-fork hook), and a global provider cannot be
    replaced anyway."""
    global _provider, _configured  # noqa: PLW0603 - one provider per process is the point
    with _lock:
        if _configured:
            return _provider
        _configured = True
        if _truthy("OTEL_SDK_DISABLED"):
            return None
        provider = TracerProvider(resource=_resource(default_service_name))  # sampler from OTEL_TRACES_*
        for exporter in _exporters():
            provider.add_span_processor(PrivateSpans(BatchSpanProcessor(exporter)))
        trace.set_tracer_provider(provider)
        _provider = provider
        _instrument_libraries(provider)
        return provider


def _instrument_libraries(provider: TracerProvider) -> None:
    """Client-side instrumentations both services share: httpx (ServiceDesk Plus, the LLM) and Celery
    (the publish in the API and the sweeper; the task in the worker)."""
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    CeleryInstrumentor().instrument(tracer_provider=provider)


def instrument_engine(engine: Engine) -> None:
    """Database client spans for `engine`'s statements, recorded with their placeholders, never their
    parameters; no SQL comment is added to the statements.

    The instrumentation's `EngineTracer` is used directly, as its instrumentor does for one engine:
    the instrumentor itself declares SQLAlchemy < 2.1 and, on 2.1, fails in its global patching (it
    imports sqlalchemy.ext.asyncio, which needs greenlet, an extra this service does not install). The
    engine tracer uses only the engine's cursor and pool events, which 2.1 kept;
    tests/app/test_tracing.py asserts its spans arrive (docs/decisions.md)."""
    provider = _provider
    if provider is None:
        return
    from opentelemetry.instrumentation.sqlalchemy import __version__ as version
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
    from opentelemetry.metrics import get_meter

    name = "opentelemetry.instrumentation.sqlalchemy"
    # No metrics are exported: the connection counter goes to the no-op meter (the pool's state is in
    # Prometheus already).
    usage = get_meter(name, version).create_up_down_counter("db.client.connections.usage")
    EngineTracer(trace.get_tracer(name, version, provider), engine, usage, enable_commenter=False)


def instrument_api(app: Any) -> None:
    """The server span of every request but health checks and scrapes; no receive/send sub-spans."""
    provider = _provider
    if provider is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=provider, excluded_urls=EXCLUDED_URLS, exclude_spans=["receive", "send"]
    )


def shutdown() -> None:
    """Export what is buffered (bounded by the batch processor's export timeout), then stop."""
    with _lock:
        if _provider is not None:
            _provider.shutdown()


def untraced() -> AbstractContextManager[None]:
    """No instrumentation spans inside: for work that is not a request's, e.g. the backlog gauges'
    queries at every scrape, which would otherwise each be a one-span trace."""
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    return suppress_instrumentation()


# Privacy: applied to every finished span before any exporter.


def _without_query(value: AttributeValue) -> AttributeValue:
    if not isinstance(value, str):
        return value
    if "://" not in value:  # http.target: a path and maybe a query
        return value.split("?", 1)[0]
    parts = urlsplit(value)
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))  # userinfo and fragment go too


def _private_attributes(attributes: Mapping[str, AttributeValue] | None) -> dict[str, AttributeValue]:
    return {
        key: _without_query(value) if key in _URL_KEYS else value
        for key, value in (attributes or {}).items()
        if key not in _DROPPED_KEYS
    }


def _private_event(event: Event) -> Event:
    if event.name != "exception":
        return Event(event.name, _private_attributes(event.attributes), event.timestamp)
    kept = {k: v for k, v in (event.attributes or {}).items() if k in _EXCEPTION_KEEP}
    return Event(event.name, kept, event.timestamp)


def private_span(span: ReadableSpan) -> ReadableSpan:
    """A copy of `span` without URL queries, exception messages or error descriptions."""
    return ReadableSpan(
        name=span.name,
        context=span.get_span_context(),
        parent=span.parent,
        resource=span.resource,
        attributes=_private_attributes(span.attributes),
        events=[_private_event(event) for event in span.events],
        links=span.links,
        kind=span.kind,
        status=Status(span.status.status_code),
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class PrivateSpans(SpanProcessor):
    """Hands `inner` (the exporting processor) a private copy of every finished span."""

    def __init__(self, inner: SpanProcessor) -> None:
        self._inner = inner

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self._inner.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        self._inner.on_end(private_span(span))

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)
