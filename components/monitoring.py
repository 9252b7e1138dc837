"""In-cluster monitoring: kube-prometheus-stack (Prometheus, Alertmanager, Grafana), the scrape
configuration for the service, its alerting rules and its dashboard.

* kube-prometheus-stack from its official chart at the version pinned in the stack config; Prometheus
  keeps ``retention_days`` of metrics on an encrypted gp3 volume (EBS CSI driver) of ``storage_gib``
  (the chart's values are built in monitoring_values.py).
* ServiceMonitors for the API (``/metrics`` on its HTTP port), the Celery worker (its own metrics
  port: the worker runs the threads pool, one process, so one registry holds every task's metrics)
  and cert-manager (certificate expiry). Targets are relabelled ``job="ai-agents-api"`` /
  ``job="ai-agents-worker"``, the names the rules use.
* Further targets the program passes (``also_scrape``): a Service's port (a ServiceMonitor, e.g. the
  trace collector's) or, where no Service exposes the port, the pods' own (a PodMonitor, e.g. the edge
  proxies' Envoy stats, relabelled ``job="ai-agents-edge"``).
* One PrometheusRule loaded from ``assets/prometheus-rules.yaml`` (unit-tested with promtool), its
  kube-state-metrics and Envoy route matchers pointed at the stack's application namespace.
* The dashboard ``assets/grafana-dashboard.json``, provisioned by Grafana's sidecar from a labelled
  ConfigMap.
* Alertmanager sends to the alarm SNS topic (the one the CloudWatch alarms use) through IRSA: no
  webhook URL or password in Git or in stack config. People and tools subscribe to the topic.
* A NetworkPolicy in the application namespace admits Prometheus (and nothing else) to the metrics
  ports, which the namespace's default-deny policy would otherwise block.

See docs/observability.md.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NotRequired, TypedDict, cast

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import yaml

from components.irsa import irsa_role, policy_document
from components.monitoring_settings import MonitoringSettings
from components.monitoring_values import (
    ALERTMANAGER_SERVICE_ACCOUNT,
    DASHBOARD_LABEL,
    FULLNAME,
    NAMESPACE,
    SCRAPE_INTERVAL,
    STORAGE_CLASS,
    chart_values,
)
from components.platform import restricted_namespace
from components.workloads.contract import (
    API_PORT,
    APP_NAME,
    METRICS_PORT,
    PART_OF,
    Component,
    selector_labels,
)

ASSETS = Path(__file__).resolve().parent / "assets"
RULES_FILE = ASSETS / "prometheus-rules.yaml"
DASHBOARD_FILE = ASSETS / "grafana-dashboard.json"

CHART = "kube-prometheus-stack"
CHART_REPO = "https://prometheus-community.github.io/helm-charts"
RELEASE = "kube-prometheus-stack"
# Labels the operator puts on every Prometheus server pod it runs.
PROMETHEUS_POD_LABELS = {"app.kubernetes.io/name": "prometheus"}

# The job labels the rules and the dashboard select on (targets are relabelled to them).
API_JOB = "ai-agents-api"
WORKER_JOB = "ai-agents-worker"
EDGE_JOB = "ai-agents-edge"
# The application namespace the rules file's kube-state-metrics matchers name (the stack default).
RULES_NAMESPACE = "ai-agents"
# Each scraped component's Service, by its `metrics` port, and the job its targets get.
SCRAPED: tuple[tuple[Component, str], ...] = (("api", API_JOB), ("worker", WORKER_JOB))


class RelabelConfig(TypedDict):
    action: str
    targetLabel: str
    replacement: str


class Endpoint(TypedDict):
    port: str
    path: str
    interval: str
    scheme: str
    relabelings: NotRequired[list[RelabelConfig]]


class LabelSelector(TypedDict):
    matchLabels: dict[str, str]


class NamespaceSelector(TypedDict):
    matchNames: list[str]


class ServiceMonitorSpec(TypedDict):
    selector: LabelSelector
    namespaceSelector: NamespaceSelector
    endpoints: list[Endpoint]


class PodMonitorSpec(TypedDict):
    selector: LabelSelector
    namespaceSelector: NamespaceSelector
    # A PodMetricsEndpoint has the fields of a ServiceMonitor's Endpoint used here; its ``port`` is the
    # name of a container port of the selected pods.
    podMetricsEndpoints: list[Endpoint]


def cert_manager_metrics_port(chart_version: str) -> str:
    """The name of cert-manager's metrics Service port (9402): renamed to ``http-metrics`` in v1.21."""
    major, minor = (int(part) for part in chart_version.lstrip("v").split(".")[:2])
    return "http-metrics" if (major, minor) >= (1, 21) else "tcp-prometheus-servicemonitor"


def load_rules(path: Path = RULES_FILE, app_namespace: str = RULES_NAMESPACE) -> dict[str, Any]:
    """The rules file as a PrometheusRule ``spec`` (``{"groups": [...]}``); an error names the file.

    The file selects kube-state-metrics' series, and Envoy's per-route ones (Envoy Gateway names a
    route's cluster ``httproute/<namespace>/<route>/...``), of the application namespace it was written
    (and promtool-tested) for; they are pointed at ``app_namespace`` here.
    """
    text = (
        path.read_text(encoding="utf-8")
        .replace(f'namespace="{RULES_NAMESPACE}"', f'namespace="{app_namespace}"')
        .replace(f'"httproute/{RULES_NAMESPACE}/', f'"httproute/{app_namespace}/')
    )
    document: Any = yaml.safe_load(text)
    if not isinstance(document, dict) or not isinstance(cast(dict[str, Any], document).get("groups"), list):
        raise ValueError(f"{path.name}: must be a Prometheus rules file with a 'groups' list")
    return cast(dict[str, Any], document)


def load_dashboard(path: Path = DASHBOARD_FILE) -> str:
    """The dashboard JSON, validated and normalised (one line per key, stable order)."""
    document: Any = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict) or "uid" not in document:
        raise ValueError(f"{path.name}: must be a Grafana dashboard with a uid")
    return json.dumps(document, indent=1, sort_keys=True)


def endpoint(port: str, job: str | None, path: str = "/metrics") -> Endpoint:
    """Scrape the named ``port`` at ``path``; with a ``job``, its targets are relabelled to it."""
    found: Endpoint = {"port": port, "path": path, "interval": SCRAPE_INTERVAL, "scheme": "http"}
    if job is not None:
        found["relabelings"] = [{"action": "replace", "targetLabel": "job", "replacement": job}]
    return found


def service_monitor_spec(
    namespace: str, selector: Mapping[str, str], port: str, job: str | None, path: str = "/metrics"
) -> ServiceMonitorSpec:
    return {
        "selector": {"matchLabels": dict(selector)},
        "namespaceSelector": {"matchNames": [namespace]},
        "endpoints": [endpoint(port, job, path)],
    }


def pod_monitor_spec(
    namespace: str, selector: Mapping[str, str], port: str, job: str | None, path: str
) -> PodMonitorSpec:
    return {
        "selector": {"matchLabels": dict(selector)},
        "namespaceSelector": {"matchNames": [namespace]},
        "podMetricsEndpoints": [endpoint(port, job, path)],
    }


def alertmanager_policy(topic_arn: str, topic_key_arn: str) -> str:
    """Publish to the alarm topic, and use its KMS key to do so: nothing else."""
    return policy_document(
        [
            {"Sid": "PublishAlerts", "Effect": "Allow", "Action": "sns:Publish", "Resource": topic_arn},
            {
                "Sid": "EncryptForTheTopic",
                "Effect": "Allow",
                "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
                "Resource": topic_key_arn,
            },
        ]
    )


@dataclass(frozen=True)
class ScrapeTarget:
    """Something in another namespace whose named ``port`` Prometheus scrapes: by default the Services
    ``selector`` matches (a ServiceMonitor, e.g. the trace collector); with ``kind="PodMonitor"`` the
    pods it matches, by their container port, for a port no Service exposes (e.g. the edge proxies')."""

    name: str
    namespace: str
    selector: Mapping[str, str]
    port: str
    kind: Literal["ServiceMonitor", "PodMonitor"] = "ServiceMonitor"
    path: str = "/metrics"
    # The job label its targets get (the rules select on it); None keeps Prometheus' own.
    job: str | None = None


@dataclass(frozen=True)
class MonitoringArgs:
    settings: MonitoringSettings
    # The cluster's provider: every Kubernetes object and the Helm release are applied with it.
    provider: k8s.Provider
    region: str
    # Namespace of the API and worker (components/workloads/); cert-manager's namespace and chart
    # version (the name of its metrics port depends on it).
    app_namespace: str
    cert_manager_namespace: str
    cert_manager_chart_version: str
    # Where Alertmanager sends alerts (the CloudWatch alarms' topic, components/alarms.py).
    alarm_topic_arn: pulumi.Input[str]
    alarm_topic_kms_key_arn: pulumi.Input[str]
    # IRSA for Alertmanager.
    oidc_provider_arn: pulumi.Input[str]
    oidc_issuer: pulumi.Input[str]
    # Prometheus and Alertmanager replicas (2 in production: a node drain loses neither).
    replicas: int = 1
    # What must exist before the ServiceMonitors and the NetworkPolicy (the workloads' namespace).
    after: Sequence[pulumi.Resource] = field(default_factory=list[pulumi.Resource])
    # Further Services or pods to scrape, each with its monitor in its own namespace (after ``after``).
    also_scrape: Sequence[ScrapeTarget] = ()


class Monitoring(pulumi.ComponentResource):
    """kube-prometheus-stack with the service's ServiceMonitors, rules and dashboard."""

    namespace: str
    release_name: str
    alertmanager_role_arn: pulumi.Output[str]
    grafana_service: str

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ai-agents:monitoring:Monitoring", name, None, opts)
        self._name = name
        on_cluster = pulumi.ResourceOptions(parent=self, provider=args.provider)
        settings = args.settings

        ns = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=NAMESPACE, labels=restricted_namespace()),
            opts=on_cluster,
        )
        storage_class = k8s.storage.v1.StorageClass(
            f"{name}-storage-class",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=STORAGE_CLASS),
            provisioner="ebs.csi.aws.com",
            parameters={"type": "gp3", "encrypted": "true", "fsType": "ext4"},
            # Metrics survive `helm uninstall`; deleting the volume is a deliberate act.
            reclaim_policy="Retain",
            volume_binding_mode="WaitForFirstConsumer",
            allow_volume_expansion=True,
            opts=on_cluster,
        )

        role = irsa_role(
            f"{name}-alertmanager",
            oidc_provider_arn=args.oidc_provider_arn,
            oidc_issuer=args.oidc_issuer,
            namespace=NAMESPACE,
            service_account=ALERTMANAGER_SERVICE_ACCOUNT,
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.iam.RolePolicy(
            f"{name}-alertmanager-sns",
            role=role.name,
            policy=pulumi.Output.all(args.alarm_topic_arn, args.alarm_topic_kms_key_arn).apply(
                lambda v: alertmanager_policy(str(v[0]), str(v[1]))
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

        release = k8s.helm.v3.Release(
            f"{name}-kube-prometheus-stack",
            name=RELEASE,
            chart=CHART,
            version=settings.chart_version,
            namespace=ns.metadata.name,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=CHART_REPO),
            values=chart_values(
                settings,
                replicas=args.replicas,
                alertmanager_role_arn=role.arn,
                topic_arn=args.alarm_topic_arn,
                region=args.region,
            ),
            # A failed upgrade rolls back instead of leaving half a monitoring stack.
            atomic=True,
            cleanup_on_fail=True,
            timeout=900,
            opts=on_cluster.merge(pulumi.ResourceOptions(depends_on=[storage_class])),
        )
        # ServiceMonitor, PodMonitor and PrometheusRule are CRDs the release installs: nothing below
        # applies earlier.
        after_release = on_cluster.merge(pulumi.ResourceOptions(depends_on=[release]))
        after_workloads = on_cluster.merge(pulumi.ResourceOptions(depends_on=[release, *args.after]))

        for component, job in SCRAPED:
            self._service_monitor(
                component,
                args.app_namespace,
                service_monitor_spec(args.app_namespace, selector_labels(component), "metrics", job),
                after_workloads,
            )
        cert_manager = {"app.kubernetes.io/name": "cert-manager", "app.kubernetes.io/component": "controller"}
        self._service_monitor(
            "cert-manager",
            args.cert_manager_namespace,
            service_monitor_spec(
                args.cert_manager_namespace,
                cert_manager,
                cert_manager_metrics_port(args.cert_manager_chart_version),
                None,
            ),
            after_release,
        )
        for target in args.also_scrape:
            if target.kind == "PodMonitor":
                self._pod_monitor(target, after_workloads)
            else:
                self._service_monitor(
                    target.name,
                    target.namespace,
                    service_monitor_spec(
                        target.namespace, target.selector, target.port, target.job, target.path
                    ),
                    after_workloads,
                )

        k8s.apiextensions.CustomResource(
            f"{name}-rules",
            api_version="monitoring.coreos.com/v1",
            kind="PrometheusRule",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name="ai-agents",
                namespace=NAMESPACE,
                labels={"app.kubernetes.io/part-of": PART_OF},
            ),
            spec=load_rules(app_namespace=args.app_namespace),
            opts=after_release,
        )
        k8s.core.v1.ConfigMap(
            f"{name}-dashboard",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name="ai-agents-dashboard",
                namespace=NAMESPACE,
                labels={DASHBOARD_LABEL[0]: DASHBOARD_LABEL[1]},
            ),
            data={"ai-agents.json": load_dashboard()},
            opts=on_cluster.merge(pulumi.ResourceOptions(depends_on=[ns])),
        )
        self._scrape_policy(args, after_workloads)

        self.namespace = NAMESPACE
        self.release_name = RELEASE
        self.alertmanager_role_arn = role.arn
        self.grafana_service = f"{FULLNAME}-grafana"
        self.register_outputs(
            {
                "namespace": self.namespace,
                "release_name": self.release_name,
                "alertmanager_role_arn": self.alertmanager_role_arn,
                "grafana_service": self.grafana_service,
            }
        )

    def _service_monitor(
        self, role: str, namespace: str, spec: ServiceMonitorSpec, opts: pulumi.ResourceOptions
    ) -> None:
        k8s.apiextensions.CustomResource(
            f"{self._name}-{role}-service-monitor",
            api_version="monitoring.coreos.com/v1",
            kind="ServiceMonitor",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=role, namespace=namespace),
            spec=spec,
            opts=opts,
        )

    def _pod_monitor(self, target: ScrapeTarget, opts: pulumi.ResourceOptions) -> None:
        k8s.apiextensions.CustomResource(
            f"{self._name}-{target.name}-pod-monitor",
            api_version="monitoring.coreos.com/v1",
            kind="PodMonitor",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=target.name, namespace=target.namespace),
            spec=pod_monitor_spec(target.namespace, target.selector, target.port, target.job, target.path),
            opts=opts,
        )

    def _scrape_policy(self, args: MonitoringArgs, opts: pulumi.ResourceOptions) -> None:
        """The workloads' namespace denies all ingress; admit Prometheus to the two metrics ports."""
        prometheus = k8s.networking.v1.NetworkPolicyPeerArgs(
            namespace_selector=k8s.meta.v1.LabelSelectorArgs(
                match_labels={"kubernetes.io/metadata.name": NAMESPACE}
            ),
            pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=PROMETHEUS_POD_LABELS),
        )
        k8s.networking.v1.NetworkPolicy(
            f"{self._name}-scrape",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="metrics-from-prometheus", namespace=args.app_namespace),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels={"app.kubernetes.io/name": APP_NAME}),
                policy_types=["Ingress"],
                ingress=[
                    k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                        from_=[prometheus],
                        ports=[
                            k8s.networking.v1.NetworkPolicyPortArgs(protocol="TCP", port=port)
                            for port in (API_PORT, METRICS_PORT)
                        ],
                    )
                ],
            ),
            opts=opts,
        )
