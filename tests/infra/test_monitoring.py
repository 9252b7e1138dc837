"""Monitoring under mocks, composed with the real platform and workloads: the pinned chart with the
config's retention and storage, ServiceMonitors that select the workloads' real Services and ports, a
PodMonitor on the edge's proxies where the edge admits Prometheus, the rules file and dashboard as
loaded, Alertmanager paging the alarm topic through IRSA, and a NetworkPolicy that lets Prometheus
(only) through the workloads' default-deny."""

from __future__ import annotations

import json
import re
from typing import Any

import pulumi_kubernetes as k8s
import pytest
import yaml

from components.edge_network_policies import STATS_PORT
from components.monitoring import (
    CHART,
    CHART_REPO,
    DASHBOARD_FILE,
    RULES_FILE,
    RULES_NAMESPACE,
    Monitoring,
    cert_manager_metrics_port,
    load_rules,
)
from components.monitoring_values import NAMESPACE, STORAGE_CLASS
from components.platform import CERT_MANAGER_NAMESPACE, Platform
from components.workloads.component import Workloads
from components.workloads.contract import API_PORT, APP_NAME, METRICS_PORT, PART_OF
from infra.config import StackConfig
from infra.program import edge_metrics, monitoring_args
from tests.infra.harness import Captured
from tests.infra.k8s_fixtures import (
    ACCOUNT,
    CONFIG_MAP,
    DEPLOYMENT,
    GATEWAY,
    HTTP_ROUTE,
    NETWORK_POLICY,
    OIDC_ISSUER,
    OIDC_PROVIDER_ARN,
    REGION,
    RELEASE,
    SERVICE,
    stack_config,
)
from tests.infra.k8s_fixtures import compose as compose_platform

TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:ai-agents-test-alarms"
TOPIC_KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/11111111-2222-3333-4444-555555555555"
SERVICE_MONITOR = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
POD_MONITOR = "kubernetes:monitoring.coreos.com/v1:PodMonitor"
PROMETHEUS_RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
STORAGE_CLASS_TYPE = "kubernetes:storage.k8s.io/v1:StorageClass"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"


def compose(config: StackConfig) -> Captured:
    """The platform, images and workloads composition, plus monitoring after the workloads, scraping the
    edge as the program has it."""

    def monitoring(provider: k8s.Provider, platform: Platform, workloads: Workloads) -> None:
        Monitoring(
            "mon",
            monitoring_args(
                config,
                provider=provider,
                alarm_topic_arn=TOPIC_ARN,
                alarm_topic_kms_key_arn=TOPIC_KEY_ARN,
                oidc_provider_arn=OIDC_PROVIDER_ARN,
                oidc_issuer=OIDC_ISSUER,
                after=[workloads],
                also_scrape=[edge_metrics(platform)],
            ),
        )

    return compose_platform(config, after_workloads=monitoring)


@pytest.fixture(scope="module", params=["staging", "production"])
def stack(request: pytest.FixtureRequest) -> tuple[StackConfig, Captured]:
    config = stack_config(str(request.param))
    return config, compose(config)


def chart(captured: Captured) -> dict[str, Any]:
    return captured.inputs(RELEASE, "mon-kube-prometheus-stack")


def monitors(captured: Captured) -> dict[str, dict[str, Any]]:
    return {
        r.name.removeprefix("mon-").removesuffix("-service-monitor"): captured.inputs(SERVICE_MONITOR, r.name)
        for r in captured.of_type(SERVICE_MONITOR)
    }


def test_chart_is_official_pinned_and_sized_from_config(stack: tuple[StackConfig, Captured]) -> None:
    config, captured = stack
    inputs = chart(captured)
    assert inputs["chart"] == CHART
    assert inputs["repositoryOpts"]["repo"] == CHART_REPO
    assert inputs["version"] == config.monitoring.chart_version
    assert inputs["namespace"] == NAMESPACE
    assert inputs["atomic"] is True
    spec = inputs["values"]["prometheus"]["prometheusSpec"]
    assert spec["retention"] == f"{config.monitoring.retention_days}d"
    claim = spec["storageSpec"]["volumeClaimTemplate"]["spec"]
    assert claim["resources"]["requests"]["storage"] == f"{config.monitoring.storage_gib}Gi"
    assert claim["storageClassName"] == STORAGE_CLASS
    # retentionSize keeps the volume from filling before time-based retention would free it.
    assert int(spec["retentionSize"].removesuffix("GB")) < config.monitoring.storage_gib
    assert spec["replicas"] == (2 if config.is_production else 1)
    # Every ServiceMonitor and rule in the cluster is selected, not only the chart's own.
    assert spec["serviceMonitorSelectorNilUsesHelmValues"] is False
    assert spec["ruleSelectorNilUsesHelmValues"] is False


def test_prometheus_volume_is_encrypted_gp3_through_the_ebs_csi_driver(
    stack: tuple[StackConfig, Captured],
) -> None:
    _, captured = stack
    storage = captured.inputs(STORAGE_CLASS_TYPE)
    assert storage["metadata"]["name"] == STORAGE_CLASS
    assert storage["provisioner"] == "ebs.csi.aws.com"
    assert storage["parameters"]["type"] == "gp3"
    assert storage["parameters"]["encrypted"] == "true"
    assert (
        captured.one(STORAGE_CLASS_TYPE).urn in captured.one(RELEASE, "mon-kube-prometheus-stack").depends_on
    )


def test_grafana_has_no_default_password_and_loads_labelled_dashboards(
    stack: tuple[StackConfig, Captured],
) -> None:
    _, captured = stack
    grafana = chart(captured)["values"]["grafana"]
    assert grafana["adminPassword"] == ""  # the chart's default is the public "prom-operator"
    sidecar = grafana["sidecar"]["dashboards"]
    dashboard = captured.inputs(CONFIG_MAP, "mon-dashboard")
    assert dashboard["metadata"]["namespace"] == sidecar["searchNamespace"] == NAMESPACE
    assert dashboard["metadata"]["labels"] == {sidecar["label"]: sidecar["labelValue"]}
    (text,) = dashboard["data"].values()
    assert json.loads(text) == json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))


def test_alertmanager_pages_the_alarm_topic_through_irsa(stack: tuple[StackConfig, Captured]) -> None:
    _, captured = stack
    alertmanager = chart(captured)["values"]["alertmanager"]
    receivers = {r["name"]: r for r in alertmanager["config"]["receivers"]}
    route = alertmanager["config"]["route"]
    (sns,) = receivers[route["receiver"]]["sns_configs"]
    assert sns["topic_arn"] == TOPIC_ARN
    assert sns["sigv4"] == {"region": REGION}  # no access keys: the pod's web identity
    assert sns["send_resolved"] is True
    account = alertmanager["serviceAccount"]
    role = captured.inputs(ROLE, "mon-alertmanager")
    trust = json.loads(role["assumeRolePolicy"])["Statement"][0]["Condition"]["StringEquals"]
    assert f"system:serviceaccount:{NAMESPACE}:{account['name']}" in trust.values()
    # The service account names the role trusted for it (the mock derives the ARN from the role's name).
    assert re.fullmatch(
        rf"arn:aws:iam::{ACCOUNT}:role/mon-alertmanager-[0-9a-f]{{7}}",
        account["annotations"]["eks.amazonaws.com/role-arn"],
    )
    policy = json.loads(captured.inputs(ROLE_POLICY, "mon-alertmanager-sns")["policy"])
    grants = {s["Sid"]: (s["Action"], s["Resource"]) for s in policy["Statement"]}
    assert grants == {
        "PublishAlerts": ("sns:Publish", TOPIC_ARN),
        "EncryptForTheTopic": (["kms:GenerateDataKey", "kms:Decrypt"], TOPIC_KEY_ARN),
    }


def test_service_monitors_select_the_workloads_services_and_named_ports(
    stack: tuple[StackConfig, Captured],
) -> None:
    config, captured = stack
    found = monitors(captured)
    assert set(found) == {"api", "worker", "cert-manager"}
    services = [captured.inputs(SERVICE, r.name) for r in captured.of_type(SERVICE)]
    for role, job in (("api", "ai-agents-api"), ("worker", "ai-agents-worker")):
        monitor = found[role]
        assert monitor["metadata"]["namespace"] == config.app.namespace
        assert monitor["spec"]["namespaceSelector"] == {"matchNames": [config.app.namespace]}
        selector = monitor["spec"]["selector"]["matchLabels"]
        matching = [
            s
            for s in services
            if s["metadata"].get("namespace") == config.app.namespace
            and all(s["metadata"]["labels"].get(k) == v for k, v in selector.items())
        ]
        assert len(matching) == 1, f"{role}: selector {selector} matches {len(matching)} Services"
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["port"] in {p["name"] for p in matching[0]["spec"]["ports"]}
        assert endpoint["path"] == "/metrics"
        assert endpoint["relabelings"] == [{"action": "replace", "targetLabel": "job", "replacement": job}]


def test_worker_is_scraped_on_its_own_metrics_port(stack: tuple[StackConfig, Captured]) -> None:
    _, captured = stack
    (endpoint,) = monitors(captured)["worker"]["spec"]["endpoints"]
    worker = captured.inputs(SERVICE, "app-worker-svc")
    (port,) = [p for p in worker["spec"]["ports"] if p["name"] == endpoint["port"]]
    assert port["port"] == METRICS_PORT and port["targetPort"] == "metrics"


def test_cert_manager_is_scraped_for_certificate_expiry(stack: tuple[StackConfig, Captured]) -> None:
    config, captured = stack
    monitor = monitors(captured)["cert-manager"]
    assert monitor["metadata"]["namespace"] == CERT_MANAGER_NAMESPACE
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == cert_manager_metrics_port(config.platform.cert_manager_chart_version)
    assert monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] == "cert-manager"


def test_cert_manager_port_name_follows_the_chart_version() -> None:
    assert cert_manager_metrics_port("v1.19.1") == "tcp-prometheus-servicemonitor"
    assert cert_manager_metrics_port("v1.21.0") == "http-metrics"
    assert cert_manager_metrics_port("1.22.3") == "http-metrics"


def test_custom_resources_wait_for_the_chart_and_the_workloads(stack: tuple[StackConfig, Captured]) -> None:
    _, captured = stack
    release = captured.one(RELEASE, "mon-kube-prometheus-stack").urn
    # Depending on a component means depending on its children: the namespace among them.
    namespace = captured.one("kubernetes:core/v1:Namespace", "app-namespace").urn
    monitors = [*captured.of_type(SERVICE_MONITOR), *captured.of_type(POD_MONITOR)]
    for resource in [*monitors, *captured.of_type(PROMETHEUS_RULE)]:
        assert release in resource.depends_on, f"{resource.name} does not wait for the CRDs"
    for role in ("api", "worker"):
        assert namespace in captured.one(SERVICE_MONITOR, f"mon-{role}-service-monitor").depends_on
    # The edge's namespace and Gateway come before the workloads' routes, so before the PodMonitor too.
    assert namespace in captured.one(POD_MONITOR, "mon-edge-proxy-pod-monitor").depends_on
    assert namespace in captured.one(NETWORK_POLICY, "mon-scrape").depends_on


def test_prometheus_rule_is_the_rules_file(stack: tuple[StackConfig, Captured]) -> None:
    _, captured = stack
    rule = captured.inputs(PROMETHEUS_RULE)
    assert rule["metadata"] == {
        "name": "ai-agents",
        "namespace": NAMESPACE,
        "labels": {"app.kubernetes.io/part-of": PART_OF},
    }
    assert rule["spec"] == yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))


KSM_DEPLOYMENT_MATCHERS = re.compile(
    r'kube_deployment_status_replicas_available\{namespace="([^"]+)", deployment="([^"]+)"\}'
)


# The alerts reading kube-state-metrics, by the component whose Deployment they watch.
KSM_ALERTS = {
    "api": ("ApiDown", "ApiMetricsMissing"),
    "worker": ("WorkerDown", "WorkerMetricsMissing"),
}


@pytest.mark.parametrize("component", sorted(KSM_ALERTS))
def test_down_alerts_watch_the_rendered_deployment(
    component: str, stack: tuple[StackConfig, Captured]
) -> None:
    """ApiDown, WorkerDown and their metrics-missing twins name the namespace and Deployment the plan
    really creates (the worker's is also the one KEDA scales)."""
    config, captured = stack
    rules = {
        rule["alert"]: rule["expr"]
        for group in captured.inputs(PROMETHEUS_RULE)["spec"]["groups"]
        for rule in group["rules"]
    }
    deployment = next(
        d["metadata"]
        for d in (captured.inputs(DEPLOYMENT, r.name) for r in captured.of_type(DEPLOYMENT))
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == component
    )
    for alert in KSM_ALERTS[component]:
        assert KSM_DEPLOYMENT_MATCHERS.findall(rules[alert]) == [
            (deployment["namespace"], deployment["name"])
        ], alert
    assert deployment["namespace"] == config.app.namespace


def test_worker_down_is_never_a_scaling_decision(stack: tuple[StackConfig, Captured]) -> None:
    """WorkerDown fires on zero available workers: KEDA must never scale the worker to zero."""
    _, captured = stack
    worker = next(
        d["metadata"]["name"]
        for d in (captured.inputs(DEPLOYMENT, r.name) for r in captured.of_type(DEPLOYMENT))
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == "worker"
    )
    (scaled,) = [captured.inputs(SCALED_OBJECT, r.name) for r in captured.of_type(SCALED_OBJECT)]
    assert scaled["spec"]["scaleTargetRef"]["name"] == worker
    assert scaled["spec"]["minReplicaCount"] >= 1


def test_rules_follow_the_application_namespace() -> None:
    text = RULES_FILE.read_text(encoding="utf-8")
    assert f'namespace="{RULES_NAMESPACE}"' in text and f'"httproute/{RULES_NAMESPACE}/' in text
    exprs = " ".join(
        rule["expr"] for group in load_rules(app_namespace="tickets")["groups"] for rule in group["rules"]
    )
    assert f'namespace="{RULES_NAMESPACE}"' not in exprs
    assert f"/{RULES_NAMESPACE}/" not in exprs
    # ApiDown's, ApiMetricsMissing's, WorkerDown's and WorkerMetricsMissing's
    assert exprs.count('namespace="tickets"') == 4
    # EdgeHighErrorRate's errors and requests
    assert exprs.count('envoy_cluster_name=~"httproute/tickets/api(-webhook)?/rule/[0-9]+"') == 2


def edge_monitor(captured: Captured) -> dict[str, Any]:
    (monitor,) = [captured.inputs(POD_MONITOR, r.name) for r in captured.of_type(POD_MONITOR)]
    return monitor


def test_edge_proxies_are_scraped_on_their_pods_where_the_edge_admits_prometheus(
    stack: tuple[StackConfig, Captured],
) -> None:
    """The PodMonitor selects the pods the edge's NetworkPolicy lets Prometheus reach on the stats port,
    in the Gateway's namespace, by the name Envoy Gateway gives that container port."""
    _, captured = stack
    monitor = edge_monitor(captured)
    gateway = captured.inputs(GATEWAY)["metadata"]
    assert monitor["metadata"] == {"name": "edge-proxy", "namespace": gateway["namespace"]}
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [gateway["namespace"]]}
    admitted = [
        policy["spec"]["podSelector"]
        for policy in (captured.inputs(NETWORK_POLICY, r.name) for r in captured.of_type(NETWORK_POLICY))
        if policy["metadata"]["namespace"] == gateway["namespace"]
        for rule in policy["spec"].get("ingress", [])
        for peer in rule.get("from", [])
        if peer.get("podSelector") == {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}
        and [p["port"] for p in rule["ports"]] == [STATS_PORT]
    ]
    # The proxies' policy and the controller's both admit Prometheus to 19001; the proxies are the pods
    # labelled with the Gateway they serve.
    (proxies,) = [
        s
        for s in admitted
        if s["matchLabels"].get("gateway.envoyproxy.io/owning-gateway-name") == gateway["name"]
    ]
    assert monitor["spec"]["selector"] == proxies
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    # Envoy Gateway's proxy Deployment: containerPort 19001 named `metrics`, Envoy's stats at this path.
    assert endpoint == {
        "port": "metrics",
        "path": "/stats/prometheus",
        "interval": chart(captured)["values"]["prometheus"]["prometheusSpec"]["scrapeInterval"],
        "scheme": "http",
        "relabelings": [{"action": "replace", "targetLabel": "job", "replacement": "ai-agents-edge"}],
    }


def edge_alert(captured: Captured) -> str:
    (expr,) = [
        rule["expr"]
        for group in captured.inputs(PROMETHEUS_RULE)["spec"]["groups"]
        for rule in group["rules"]
        if rule["alert"] == "EdgeHighErrorRate"
    ]
    return expr


def test_edge_alert_reads_the_scraped_job_and_exactly_the_api_routes(
    stack: tuple[StackConfig, Captured],
) -> None:
    """EdgeHighErrorRate selects the PodMonitor's job, and among the clusters Envoy Gateway makes of the
    planned HTTPRoutes (httproute/<namespace>/<name>/rule/<n>) exactly those of the routes to the API."""
    _, captured = stack
    expr = edge_alert(captured)
    (endpoint,) = edge_monitor(captured)["spec"]["podMetricsEndpoints"]
    (relabel,) = endpoint["relabelings"]
    assert re.findall(r'job="([^"]+)"', expr) == [relabel["replacement"]] * 2
    (pattern,) = set(re.findall(r'envoy_cluster_name=~"([^"]+)"', expr))
    api_service = captured.inputs(SERVICE, "app-api-svc")["metadata"]["name"]
    clusters: dict[str, bool] = {}
    for route in (captured.inputs(HTTP_ROUTE, r.name) for r in captured.of_type(HTTP_ROUTE)):
        for index, rule in enumerate(route["spec"]["rules"]):
            name = f"httproute/{route['metadata']['namespace']}/{route['metadata']['name']}/rule/{index}"
            clusters[name] = [b["name"] for b in rule.get("backendRefs", [])] == [api_service]
    assert sum(clusters.values()) == 2 and not all(clusters.values())  # the redirect is not the API's
    # Prometheus anchors label regexes at both ends.
    assert {name: re.fullmatch(pattern, name) is not None for name in clusters} == clusters


def test_prometheus_alone_may_reach_the_metrics_ports(stack: tuple[StackConfig, Captured]) -> None:
    config, captured = stack
    policy = captured.inputs(NETWORK_POLICY, "mon-scrape")
    assert policy["metadata"]["namespace"] == config.app.namespace
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress"]
    assert spec["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": APP_NAME}}
    (rule,) = spec["ingress"]
    (peer,) = rule["from"]
    assert peer["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}}
    assert peer["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}
    assert sorted(p["port"] for p in rule["ports"]) == sorted([API_PORT, METRICS_PORT])


def test_every_object_is_parented_and_on_the_cluster_provider(stack: tuple[StackConfig, Captured]) -> None:
    _, captured = stack
    component = captured.one("ai-agents:monitoring:Monitoring")
    children = list(captured.children_of(component.urn))
    assert len(children) >= 10
    for child in children:
        assert child.name.startswith("mon-"), child.name
        if child.type.startswith("kubernetes:"):
            assert "::k8s::" in child.provider, f"{child.name} is not applied with the cluster provider"
            inputs = captured.inputs(child.type, child.name)
            assert inputs.get("metadata", {}).get("name") or child.type == RELEASE, child.name


def test_control_plane_components_eks_hides_are_not_scraped(stack: tuple[StackConfig, Captured]) -> None:
    """EKS runs the controller manager, scheduler and etcd out of reach, and kube-proxy serves its metrics
    on the node's loopback: scraping them only yields `…Down` alerts that page forever."""
    _, captured = stack
    values = chart(captured)["values"]
    for component in ("kubeControllerManager", "kubeScheduler", "kubeEtcd", "kubeProxy"):
        assert values[component]["enabled"] is False, component
    rules = values["defaultRules"]["rules"]
    for group in (
        "etcd",
        "kubeControllerManager",
        "kubeSchedulerAlerting",
        "kubeSchedulerRecording",
        "kubeProxy",
    ):
        assert rules[group] is False, group
    # The API server is managed but reachable: it stays scraped.
    assert values.get("kubeApiServer", {}).get("enabled", True) is True
