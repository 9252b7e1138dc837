"""Tracing on both stacks, through the whole program: the collector in its own restricted namespace from
the pinned chart and digest, an IRSA role that may only upload X-Ray segments, the stack's sample ratio
in the collector's tail sampling (routed by trace id so every replica sees whole traces), the pods'
OpenTelemetry environment pointing at the collector's Service, and NetworkPolicies on both sides."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.tracing import (
    CHART,
    CHART_REPO,
    IMAGE_REPOSITORY,
    METRICS_PORT,
    NAMESPACE,
    OTLP_GRPC_PORT,
    OTLP_HTTP_PORT,
    POD_LABELS,
    RELEASE,
    ROUTED_PORT,
    ROUTED_SERVICE,
    SERVICE_ACCOUNT,
    SERVICE_LABELS,
)
from components.workloads.contract import selector_labels
from infra.config import ConfigError, StackConfig, load_stack_file, parse_stack_config, read_stack_file
from stacks.plan import capture_program
from tests.infra.checks import as_list, statements
from tests.infra.harness import Captured, run_stack
from tests.infra.k8s_fixtures import CONFIG_MAP, DEPLOYMENT, NETWORK_POLICY, PDB, SERVICE
from tests.infra.k8s_fixtures import NAMESPACE as NAMESPACE_TYPE
from tests.infra.k8s_fixtures import RELEASE as RELEASE_TYPE

ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
TRACING = "ai-agents:tracing:Tracing"
SERVICE_MONITOR = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"


@pytest.fixture(scope="module", params=["staging", "production"])
def stack(request: pytest.FixtureRequest) -> tuple[StackConfig, Captured]:
    return load_stack_file(request.param), run_stack(request.param)


def _child(captured: Captured, type_token: str, suffix: str) -> dict[str, Any]:
    """The inputs of the Tracing component's one child of ``type_token`` whose name ends in ``suffix``."""
    component = captured.one(TRACING)
    matches = [
        r for r in captured.children_of(component.urn) if r.type == type_token and r.name.endswith(suffix)
    ]
    assert len(matches) == 1, f"expected one {type_token} *{suffix}, found {[r.name for r in matches]}"
    return captured.inputs(type_token, matches[0].name)


def _chart(captured: Captured) -> dict[str, Any]:
    return _child(captured, RELEASE_TYPE, "-collector")


def _collector_config(captured: Captured) -> dict[str, Any]:
    return _chart(captured)["values"]["alternateConfig"]


def _policies_in(captured: Captured, namespace: str) -> dict[str, dict[str, Any]]:
    found = (captured.inputs(NETWORK_POLICY, r.name) for r in captured.of_type(NETWORK_POLICY))
    return {p["metadata"]["name"]: p["spec"] for p in found if p["metadata"]["namespace"] == namespace}


def _peer(namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
        "podSelector": {"matchLabels": labels},
    }


def _ports(rule: dict[str, Any]) -> set[int]:
    return {int(p["port"]) for p in rule["ports"]}


def test_collector_namespace_enforces_restricted(stack: tuple[StackConfig, Captured]) -> None:
    _, captured = stack
    labels = _child(captured, NAMESPACE_TYPE, "-namespace")["metadata"]
    assert labels["name"] == NAMESPACE
    assert labels["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_chart_and_image_are_pinned(stack: tuple[StackConfig, Captured]) -> None:
    config, captured = stack
    chart = _chart(captured)
    assert chart["chart"] == CHART
    assert chart["repositoryOpts"]["repo"] == CHART_REPO
    assert chart["version"] == config.tracing.chart_version
    assert chart["version"].count(".") == 2 and chart["version"].replace(".", "").isdigit()
    image = chart["values"]["image"]
    assert image["repository"] == IMAGE_REPOSITORY
    # The chart pulls by digest whenever one is set, whatever the tag says.
    assert image["digest"] == config.tracing.image_digest
    assert image["digest"].startswith("sha256:") and len(image["digest"]) == 71


def test_collector_pods_are_hardened_and_sized(stack: tuple[StackConfig, Captured]) -> None:
    config, captured = stack
    values = _chart(captured)["values"]
    context = values["securityContext"]
    assert context["runAsNonRoot"] is True and context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False and context["capabilities"] == {"drop": ["ALL"]}
    assert values["podSecurityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert values["resources"]["requests"] and values["resources"]["limits"]["memory"]
    assert values["serviceAccount"]["automountServiceAccountToken"] is False
    assert values["replicaCount"] == config.tracing.replicas
    # Only the OTLP receivers: none of the chart's default Jaeger or Zipkin ports is opened.
    opened = {name for name, port in values["ports"].items() if port["enabled"]}
    assert opened == {"otlp", "otlp-http", "otlp-routed", "metrics"}


def test_production_runs_two_collectors_under_a_disruption_budget(
    stack: tuple[StackConfig, Captured],
) -> None:
    config, captured = stack
    component = captured.one(TRACING)
    budgets = [r for r in captured.children_of(component.urn) if r.type == PDB]
    if config.is_production:
        assert config.tracing.replicas >= 2
        assert len(budgets) == 1
        spec = captured.inputs(PDB, budgets[0].name)["spec"]
        assert spec["maxUnavailable"] == 1 and spec["selector"]["matchLabels"] == POD_LABELS
    else:
        assert budgets == [] and config.tracing.replicas == 1


def test_collector_role_may_only_upload_segments(stack: tuple[StackConfig, Captured]) -> None:
    _, captured = stack
    policy = _child(captured, ROLE_POLICY, "-collector-xray")
    (statement,) = statements(policy["policy"])
    assert statement["Effect"] == "Allow"
    assert as_list(statement["Action"]) == ["xray:PutTraceSegments"]
    role = _child(captured, ROLE, "-collector")
    (trust,) = statements(role["assumeRolePolicy"])
    subjects = [v for k, v in trust["Condition"]["StringEquals"].items() if k.endswith(":sub")]
    assert subjects == [f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"]
    account = _chart(captured)["values"]["serviceAccount"]
    assert account["name"] == SERVICE_ACCOUNT
    component = captured.one(TRACING)
    role_reg = next(r for r in captured.children_of(component.urn) if r.type == ROLE)
    assert account["annotations"]["eks.amazonaws.com/role-arn"] == role_reg.outputs["arn"]


def test_stack_sample_ratio_reaches_the_tail_sampler(stack: tuple[StackConfig, Captured]) -> None:
    config, captured = stack
    collector = _collector_config(captured)
    policies = {p["name"]: p for p in collector["processors"]["tail_sampling"]["policies"]}
    assert policies["ratio"]["probabilistic"]["sampling_percentage"] == pytest.approx(
        config.tracing.sample_ratio * 100
    )
    # Every error trace is kept whatever the ratio.
    assert policies["errors"] == {
        "name": "errors",
        "type": "status_code",
        "status_code": {"status_codes": ["ERROR"]},
    }
    assert (
        collector["processors"]["tail_sampling"]["decision_wait"]
        == f"{config.tracing.decision_wait_seconds}s"
    )
    sampled = collector["service"]["pipelines"]["traces/sampled"]
    assert "tail_sampling" in sampled["processors"] and sampled["exporters"] == ["awsxray"]
    assert collector["exporters"]["awsxray"]["region"] == config.aws.region


def test_spans_are_routed_by_trace_id_to_the_collectors_themselves(
    stack: tuple[StackConfig, Captured],
) -> None:
    _, captured = stack
    collector = _collector_config(captured)
    first = collector["service"]["pipelines"]["traces"]
    assert first == {"receivers": ["otlp"], "processors": ["memory_limiter"], "exporters": ["loadbalancing"]}
    balancing = collector["exporters"]["loadbalancing"]
    assert balancing["routing_key"] == "traceID"
    assert balancing["resolver"]["dns"] == {
        "hostname": f"{ROUTED_SERVICE}.{NAMESPACE}.svc.cluster.local",
        "port": str(ROUTED_PORT),
    }
    service = _child(captured, SERVICE, "-sampling-svc")
    assert service["metadata"]["name"] == ROUTED_SERVICE and service["metadata"]["namespace"] == NAMESPACE
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["selector"] == POD_LABELS
    assert [int(p["port"]) for p in service["spec"]["ports"]] == [ROUTED_PORT]
    assert collector["receivers"]["otlp/routed"]["protocols"]["grpc"]["endpoint"].endswith(f":{ROUTED_PORT}")


def test_pods_export_every_span_to_the_collector_service(stack: tuple[StackConfig, Captured]) -> None:
    config, captured = stack
    data = captured.inputs(CONFIG_MAP, f"ai-agents-{config.environment}-config")["data"]
    # The chart's Service is named after fullnameOverride, in the collector's namespace.
    assert _chart(captured)["values"]["fullnameOverride"] == RELEASE
    assert data["OTEL_EXPORTER_OTLP_ENDPOINT"] == f"http://{RELEASE}.{NAMESPACE}:{OTLP_HTTP_PORT}"
    assert data["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    # Sampling is the collector's: the SDK records and sends everything.
    assert data["OTEL_TRACES_SAMPLER"] == "parentbased_always_on"
    assert "OTEL_TRACES_SAMPLER_ARG" not in data
    assert data["OTEL_RESOURCE_ATTRIBUTES"] == f"deployment.environment={config.environment}"
    for component in ("api", "worker"):
        deployment = next(
            captured.inputs(DEPLOYMENT, r.name)
            for r in captured.of_type(DEPLOYMENT)
            if r.name.endswith(f"-{component}")
        )
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["OTEL_SERVICE_NAME"] == f"ai-agents-{component}"


def test_app_pods_may_reach_the_collector_on_otlp_http_only(stack: tuple[StackConfig, Captured]) -> None:
    config, captured = stack
    app = _policies_in(captured, config.app.namespace)
    for component in ("api", "worker"):
        rules = [r for r in app[f"{component}-egress"]["egress"] if _peer(NAMESPACE, POD_LABELS) in r["to"]]
        assert len(rules) == 1 and _ports(rules[0]) == {OTLP_HTTP_PORT}
    assert not any(_peer(NAMESPACE, POD_LABELS) in r["to"] for r in app["migrations-egress"]["egress"])


def test_collector_admits_only_the_app_the_collectors_and_prometheus(
    stack: tuple[StackConfig, Captured],
) -> None:
    config, captured = stack
    policies = _policies_in(captured, NAMESPACE)
    assert policies["default-deny"]["policyTypes"] == ["Ingress", "Egress"]
    collector = policies["collector"]
    by_ports = {frozenset(_ports(rule)): rule["from"] for rule in collector["ingress"]}
    clients = [_peer(config.app.namespace, selector_labels(c)) for c in ("api", "worker")]
    assert by_ports[frozenset({OTLP_HTTP_PORT, OTLP_GRPC_PORT})] == clients
    assert by_ports[frozenset({ROUTED_PORT})] == [_peer(NAMESPACE, POD_LABELS)]
    assert by_ports[frozenset({METRICS_PORT})] == [
        _peer("monitoring", {"app.kubernetes.io/name": "prometheus"})
    ]
    assert len(by_ports) == 3
    egress_ports = sorted(sorted(_ports(rule)) for rule in collector["egress"])
    assert egress_ports == [[53], [443], [ROUTED_PORT]]


def test_prometheus_scrapes_the_collectors_metrics(stack: tuple[StackConfig, Captured]) -> None:
    config, captured = stack
    assert config.monitoring.enabled
    (monitor,) = (
        captured.inputs(SERVICE_MONITOR, r.name)
        for r in captured.of_type(SERVICE_MONITOR)
        if r.inputs["metadata"]["namespace"] == NAMESPACE
    )
    spec = monitor["spec"]
    # The chart's Service (it has the "component" label; the headless one has no metrics port).
    assert spec["selector"]["matchLabels"] == SERVICE_LABELS
    assert spec["namespaceSelector"]["matchNames"] == [NAMESPACE]
    assert [e["port"] for e in spec["endpoints"]] == ["metrics"]
    assert _chart(captured)["values"]["ports"]["metrics"]["containerPort"] == METRICS_PORT


def _production_with(**tracing: Any) -> dict[str, Any]:
    values = read_stack_file("production")
    section = dict(values.get("ai-agents-platform:tracing") or {})
    section.update(tracing)
    return {**values, "ai-agents-platform:tracing": section}


@pytest.mark.parametrize(
    ("tracing", "message"),
    [
        (
            {"sampleRatio": 0.5},
            "ai-agents-platform:tracing.sampleRatio: must be between 0.01 and 0.05 in production",
        ),
        ({"sampleRatio": 0}, "ai-agents-platform:tracing.sampleRatio: Input should be greater than 0"),
        ({"enabled": False}, "ai-agents-platform:tracing.enabled: must be true in production"),
        ({"replicas": 0}, "ai-agents-platform:tracing.replicas: Input should be greater than or equal to 1"),
        ({"imageDigest": "latest"}, "ai-agents-platform:tracing.imageDigest: String should match pattern"),
        ({"sampleRate": 0.02}, "ai-agents-platform:tracing.sampleRate: unknown key"),
    ],
)
def test_bad_tracing_config_is_one_line_naming_the_key(tracing: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_stack_config(_production_with(**tracing), "Pulumi.production.yaml")
    text = str(raised.value)
    assert text.startswith(f"Pulumi.production.yaml: {message}"), text
    assert "\n" not in text


def test_staging_may_sample_more_than_production() -> None:
    staging, production = load_stack_file("staging"), load_stack_file("production")
    assert 0.01 <= production.tracing.sample_ratio <= 0.05
    assert staging.tracing.sample_ratio > production.tracing.sample_ratio
    assert (
        json.dumps(parse_stack_config(_production_with(sampleRatio=0.01), "x").tracing.sample_ratio) == "0.01"
    )


def test_a_stack_without_tracing_exports_nothing_and_opens_no_egress() -> None:
    values = {**read_stack_file("staging"), "ai-agents-platform:tracing": {"enabled": False}}
    config = parse_stack_config(values, "Pulumi.staging.yaml")
    captured = Captured(capture_program("staging", values, config).registrations)
    assert captured.of_type(TRACING) == []
    data = captured.inputs(CONFIG_MAP, "ai-agents-staging-config")["data"]
    # No endpoint: the SDK still makes trace ids for the logs but exports nothing.
    assert not any(key.startswith("OTEL_EXPORTER") or key == "OTEL_TRACES_SAMPLER" for key in data)
    assert data["OTEL_RESOURCE_ATTRIBUTES"] == "deployment.environment=staging"
    egress = _policies_in(captured, config.app.namespace)["api-egress"]["egress"]
    assert not any(_peer(NAMESPACE, POD_LABELS) in rule["to"] for rule in egress)
