"""Prometheus metrics. The API exposes them on /metrics, the worker on WORKER_METRICS_PORT."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from app.log import get_logger

log = get_logger(__name__)

HTTP_REQUESTS = Counter(
    "ai_agents_http_requests_total",
    "HTTP requests by route template and status",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "ai_agents_http_request_duration_seconds",
    "HTTP request latency by route template",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
WEBHOOK_OUTCOMES = Counter(
    "ai_agents_webhook_outcomes_total",
    "Webhook deliveries by outcome (accepted, duplicate, unauthorized, invalid, too_large, ...)",
    ["outcome"],
)
ENQUEUE_FAILURES = Counter(
    "ai_agents_enqueue_failures_total", "Publishes to the broker that failed (the sweeper re-sends them)"
)
ENHANCEMENT_DURATION = Histogram(
    "ai_agents_enhancement_duration_seconds",
    "Time from claim to outcome of one enhancement attempt",
    ["outcome"],
    buckets=(0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300),
)
ENHANCEMENT_OUTCOMES = Counter(
    "ai_agents_enhancements_total",
    "Enhancement attempts by outcome (succeeded, failed, retry, skipped)",
    ["outcome"],
)
LLM_LATENCY = Histogram(
    "ai_agents_llm_request_duration_seconds",
    "LLM chat completion latency",
    ["outcome"],
    buckets=(0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120),
)
LLM_ERRORS = Counter("ai_agents_llm_errors_total", "LLM call failures by kind", ["kind"])
LLM_TOKENS = Counter(
    "ai_agents_llm_tokens_total",
    "LLM tokens billed, from the completions' reported usage, by kind (prompt, completion)",
    ["kind"],
)
# Both series exist from start-up (at 0), so rate() and increase() see the first job's tokens.
for _kind in ("prompt", "completion"):
    LLM_TOKENS.labels(_kind)
SDP_LATENCY = Histogram(
    "ai_agents_servicedesk_request_duration_seconds",
    "ServiceDesk Plus API latency per HTTP attempt",
    ["operation", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
SDP_ERRORS = Counter(
    "ai_agents_servicedesk_errors_total", "ServiceDesk Plus call failures by kind", ["operation", "kind"]
)
SWEEPER_REQUEUED = Counter("ai_agents_sweeper_requeued_total", "Jobs the sweeper sent to the broker again")
TENANT_INVALIDATIONS = Counter(
    "ai_agents_tenant_invalidations_total",
    "Tenant change notifications received: the API forgot what it cached about that tenant",
)
TENANT_LOOKUPS = Counter(
    "ai_agents_tenant_lookups_total",
    "Database look-ups of tenant ids the authenticator had not cached, by result (found, unknown, refused)",
    ["result"],
)
TENANT_LISTENER_CONNECTED = Gauge(
    "ai_agents_tenant_listener_connected",
    "1 while the API hears tenant changes at once; 0 while its caches fall back to short ages",
)


class BacklogCollector(Collector):
    """Jobs by status (database) and broker queue depth (Redis), read at scrape time.

    Results are cached for a few seconds so several scrapers cannot turn /metrics into a load test of
    the database; a failing source is reported as absent rather than failing the whole scrape.
    """

    def __init__(
        self,
        job_counts: Callable[[], dict[str, int]],
        queue_depth: Callable[[], int],
        cache_seconds: float = 10.0,
    ) -> None:
        self._job_counts = job_counts
        self._queue_depth = queue_depth
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._at = 0.0
        self._cached: tuple[dict[str, int] | None, int | None] = (None, None)

    def _read(self) -> tuple[dict[str, int] | None, int | None]:
        with self._lock:
            if time.monotonic() - self._at < self._cache_seconds:
                return self._cached
            counts: dict[str, int] | None = None
            depth: int | None = None
            try:
                counts = self._job_counts()
            except Exception as error:
                log.warning("metrics_job_counts_failed", error=type(error).__name__)
            try:
                depth = self._queue_depth()
            except Exception as error:
                log.warning("metrics_queue_depth_failed", error=type(error).__name__)
            self._cached, self._at = (counts, depth), time.monotonic()
            return self._cached

    def collect(self) -> Iterable[GaugeMetricFamily]:
        counts, depth = self._read()
        if counts is not None:
            jobs = GaugeMetricFamily("ai_agents_jobs", "Enhancement jobs by status", labels=["status"])
            for status in ("queued", "running", "succeeded", "failed"):
                jobs.add_metric([status], counts.get(status, 0))
            yield jobs
        if depth is not None:
            yield GaugeMetricFamily(
                "ai_agents_queue_depth", "Messages waiting in the broker queue", value=depth
            )
