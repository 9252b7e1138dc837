"""The alerting rules and the dashboard the monitoring component deploys.

* ``promtool check rules`` and ``promtool test rules`` (a firing and a not-firing case per alert, in
  rules-test.yaml); promtool comes from Debian's ``prometheus`` package (tests/bin/install-system-deps).
* Every alert carries what on-call needs: severity, summary, description, a runbook link to its own
  section of docs/runbook.md, and the previous deployment's alerts are all there.
* Every query, in the rules and in the dashboard, names only metrics that exist: the app's own
  (read from its registry, not from a list kept here) or standard kube-state-metrics, cAdvisor,
  cert-manager and Envoy ones.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric

from app import metrics as app_metrics
from components.monitoring import DASHBOARD_FILE, RULES_FILE

HERE = Path(__file__).resolve().parent
RULES_TEST = HERE / "rules-test.yaml"
RUNBOOK_PREFIX = "https://github.com/ai-agents-platform/ai-agents-platform/blob/main/docs/runbook.md#alert-"
# Alerts the previous deployment had (its Alertmanager), and the ones the issue adds.
REQUIRED_ALERTS = {
    "ApiDown",
    "ApiMetricsMissing",
    "WorkerDown",
    "WorkerMetricsMissing",
    "ApiHighErrorRate",
    "EdgeHighErrorRate",
    "QueueBacklog",
    "DatabaseConnectionFailures",
    "TLSCertificateExpiringSoon",
    "PodRestartLoop",
    "EnhancementLatencyHigh",
    "EnhancementJobsFailing",
    "SweeperRequeuing",
}
# Metrics exported by components every cluster of this platform runs (kube-prometheus-stack's
# kube-state-metrics, the kubelet's cAdvisor, Prometheus itself, cert-manager's controller, the edge's
# Envoy proxies: a cluster's upstream_rq_<n>xx counters, as Envoy's Prometheus output names them).
STANDARD_METRICS = {
    "up",
    "kube_pod_container_status_restarts_total",
    "kube_pod_info",
    "kube_deployment_status_replicas_available",
    "container_cpu_usage_seconds_total",
    "container_memory_working_set_bytes",
    "certmanager_certificate_expiration_timestamp_seconds",
    "certmanager_certificate_ready_status",
    "envoy_cluster_upstream_rq_xx",
}
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset",
    "bool", "inf", "nan", "le",
}  # fmt: skip
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool missing: run tests/bin/install-system-deps (make test does)"
)


def app_metric_names() -> set[str]:
    """Every sample name the app can expose: its registered metrics plus the scrape-time collector."""
    registry = CollectorRegistry()
    for value in vars(app_metrics).values():
        if isinstance(value, app_metrics.Counter | app_metrics.Histogram):
            registry.register(value)
    registry.register(app_metrics.BacklogCollector(lambda: {"queued": 1}, lambda: 1, cache_seconds=0))
    names: set[str] = set()
    for family in registry.collect():
        family_metric: Metric = family
        names.add(family_metric.name)
        names.update(sample.name for sample in family_metric.samples)
        if family_metric.type == "counter":  # labelled counters have no samples until first used
            names.add(f"{family_metric.name}_total")
        if family_metric.type == "histogram":
            names.update(f"{family_metric.name}_{suffix}" for suffix in ("bucket", "count", "sum"))
    return names


KNOWN_METRICS = app_metric_names() | STANDARD_METRICS


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (functions, keywords, labels and strings removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\$\{?\w+\}?", "", text)  # Grafana variables ($__rate_interval, ${datasource})
    names = set()
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", text):
        word = match.group(1)
        if word.lower() not in PROMQL_WORDS and not re.fullmatch(r"\d+[smhdwy]", word):
            names.add(word)
    return names


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard_panels(panels: list[dict[str, Any]] | None = None) -> Iterator[dict[str, Any]]:
    found: list[dict[str, Any]] = (
        json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))["panels"] if panels is None else panels
    )
    for panel in found:
        yield panel
        yield from dashboard_panels(panel.get("panels", []))


def dashboard_queries() -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in dashboard_panels()
        for target in panel.get("targets", [])
    ]


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=120, check=False)


@needs_promtool
def test_promtool_checks_the_rules_file() -> None:
    result = promtool("check", "rules", str(RULES_FILE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


@needs_promtool
def test_promtool_unit_tests_pass() -> None:
    result = promtool("test", "rules", str(RULES_TEST))
    assert result.returncode == 0, result.stdout + result.stderr


# Rules changed in ways the unit tests must catch: (original, broken, the alert whose case fails).
BROKEN_RULES = {
    # The API-down window doubled: the firing case at 5 minutes must fail.
    "api-down-later": (
        'deployment="api"}) == 0\n        for: 2m',
        'deployment="api"}) == 0\n        for: 4m',
        "ApiDown",
    ),
    # WorkerDown back on the scrape: ready workers nobody scrapes would page as down.
    "worker-down-on-up": (
        'expr: sum(kube_deployment_status_replicas_available{namespace="ai-agents", deployment="worker"}) == 0',
        'expr: absent(up{job="ai-agents-worker"} == 1)',
        "WorkerDown",
    ),
    # The edge's errors counted on every route: the ACME solver's 5xx would page as the API's.
    "edge-errors-of-every-route": (
        'envoy_cluster_name=~"httproute/ai-agents/api(-webhook)?/rule/[0-9]+", envoy_response_code_class="5"',
        'envoy_response_code_class="5"',
        "EdgeHighErrorRate",
    ),
    # The edge's requests counted on every route: the solver's traffic would dilute the API's errors.
    "edge-requests-of-every-route": (
        'job="ai-agents-edge", envoy_cluster_name=~"httproute/ai-agents/api(-webhook)?/rule/[0-9]+"}[5m]))\n',
        'job="ai-agents-edge"}[5m]))\n',
        "EdgeHighErrorRate",
    ),
}


@needs_promtool
@pytest.mark.parametrize("change", sorted(BROKEN_RULES))
def test_promtool_unit_tests_can_fail(change: str, tmp_path: Path) -> None:
    """The same tests against a broken copy of the rules: the case that pins the change must fail."""
    original, replacement, alert = BROKEN_RULES[change]
    text = RULES_FILE.read_text(encoding="utf-8")
    assert text.count(original) == 1
    (tmp_path / "rules.yaml").write_text(text.replace(original, replacement), encoding="utf-8")
    tests = yaml.safe_load(RULES_TEST.read_text(encoding="utf-8"))
    tests["rule_files"] = ["rules.yaml"]
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(tests), encoding="utf-8")
    result = promtool("test", "rules", str(tmp_path / "test.yaml"))
    assert result.returncode != 0 and f"alertname: {alert}" in result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    """A firing case for each alert at each of its severities (QueueBacklog has two), a quiet one each."""
    tests = yaml.safe_load(RULES_TEST.read_text(encoding="utf-8"))["tests"]
    firing: set[tuple[str, str]] = set()
    quiet: set[str] = set()
    for test in tests:
        for check in test.get("alert_rule_test", []):
            expected = check.get("exp_alerts") or []
            firing.update((check["alertname"], alert["exp_labels"]["severity"]) for alert in expected)
            if not expected:
                quiet.add(check["alertname"])
    assert firing == {(rule["alert"], rule["labels"]["severity"]) for rule in rules()}
    assert quiet == {rule["alert"] for rule in rules()}


def test_previous_and_new_alerts_are_all_defined() -> None:
    assert {rule["alert"] for rule in rules()} >= REQUIRED_ALERTS


@pytest.mark.parametrize("rule", rules(), ids=lambda r: r["alert"])
def test_alert_tells_on_call_what_and_where(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in {"critical", "warning"}
    annotations = rule["annotations"]
    assert annotations["summary"] and len(annotations["description"]) > 40
    assert annotations["runbook_url"] == RUNBOOK_PREFIX + rule["alert"].lower()


@pytest.mark.parametrize("rule", rules(), ids=lambda r: r["alert"])
def test_alert_uses_only_real_metrics(rule: dict[str, Any]) -> None:
    names = metric_names(rule["expr"])
    assert names, rule["expr"]
    assert names <= KNOWN_METRICS, f"unknown metrics {sorted(names - KNOWN_METRICS)}"


def test_dashboard_is_valid_and_queries_only_real_metrics() -> None:
    document = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
    assert document["uid"] and document["title"]
    ids = [panel["id"] for panel in dashboard_panels()]
    assert len(ids) == len(set(ids))
    queries = dashboard_queries()
    assert len(queries) >= 15
    for title, expr in queries:
        names = metric_names(expr)
        assert names, f"{title}: no metric in {expr}"
        assert names <= KNOWN_METRICS, f"{title}: unknown metrics {sorted(names - KNOWN_METRICS)}"


def test_dashboard_covers_what_the_issue_asks_for() -> None:
    used = set().union(*(metric_names(expr) for _, expr in dashboard_queries()))
    for metric in (
        "ai_agents_http_requests_total",  # request rate and errors
        "ai_agents_http_request_duration_seconds_bucket",  # latency
        "ai_agents_queue_depth",  # queue depth
        "ai_agents_enhancements_total",  # job outcomes
        "ai_agents_llm_request_duration_seconds_bucket",  # LLM latency
        "ai_agents_llm_request_duration_seconds_count",  # LLM calls (cost)
    ):
        assert metric in used, metric


def test_metric_name_extraction_catches_a_typo() -> None:
    assert metric_names('sum by (route) (rate(ai_agents_http_request_total{status=~"5.."}[5m])) > 0.05') == {
        "ai_agents_http_request_total"
    }
    assert "ai_agents_http_request_total" not in KNOWN_METRICS
    assert metric_names('absent(up{job="x"} == 1) and on() time() - 3 * 86400') == {"up"}
