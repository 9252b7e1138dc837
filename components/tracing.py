"""The OpenTelemetry Collector: receives the API's and the worker's spans over OTLP and sends the traces
it keeps to AWS X-Ray through IRSA (docs/decisions.md, "Traces: one collector, tail sampling, X-Ray").

* The official opentelemetry-collector chart at the version pinned in the stack config, running the
  contrib distribution (the one that carries the ``awsxray`` exporter, the ``tail_sampling`` processor
  and the ``loadbalancing`` exporter) pulled by digest. The whole collector configuration is ours
  (``alternateConfig``): none of the chart's default receivers (Jaeger, Zipkin) is opened.
* Sampling happens here, not in the SDK: the pods record every trace (``parentbased_always_on``) and the
  collector keeps every trace with an error plus ``sampleRatio`` of the rest. A trace's spans must all
  reach the replica that decides, so the first pipeline routes spans by trace id (``loadbalancing``
  exporter, over a headless Service of the collectors themselves) to the second, which samples.
* Its own namespace (Pod Security ``restricted``), default-deny NetworkPolicies: OTLP in only from the
  API and worker pods, the routed spans only from the collectors, metrics only from Prometheus; out
  only DNS, the other collectors and HTTPS (X-Ray and STS).
* The IRSA role may only ``xray:PutTraceSegments`` (all the exporter calls; the X-Ray sampling APIs
  serve SDK-side remote sampling, which is not used).

A collector outage loses traces, never requests: the SDK exports from a bounded background queue and
drops what it cannot send (docs/runbook.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.irsa import irsa_role, policy_document
from components.platform import restricted_namespace
from components.tracing_settings import TracingSettings
from components.workloads.contract import selector_labels
from components.workloads.network_policies import (
    DNS_PORT,
    HTTPS_PORT,
    Destination,
    PolicyPlan,
    peer_pods,
    policy_spec,
    tcp,
)

CHART = "opentelemetry-collector"
CHART_REPO = "https://open-telemetry.github.io/opentelemetry-helm-charts"
IMAGE_REPOSITORY = "otel/opentelemetry-collector-contrib"
# The contrib image's executable and its (non-root) user.
COMMAND = "otelcol-contrib"
RUN_AS = 10001

NAMESPACE = "observability"
# Release name and fullnameOverride: the Service is ``otel-collector.observability``.
RELEASE = "otel-collector"
SERVICE_ACCOUNT = "otel-collector"
# The chart's selector labels for this release (name = the chart's name, instance = the release).
POD_LABELS = {"app.kubernetes.io/name": CHART, "app.kubernetes.io/instance": RELEASE}
# The chart's own Service (not the headless one declared here) carries this label too, and the port
# named "metrics" (the collector's telemetry on METRICS_PORT).
SERVICE_LABELS = {**POD_LABELS, "component": "standalone-collector"}
METRICS_PORT_NAME = "metrics"
# Headless Service of the collectors' routed-span port: the loadbalancing exporter resolves it to the
# pods' addresses and sends each trace id to one of them.
ROUTED_SERVICE = f"{RELEASE}-sampling"

OTLP_GRPC_PORT = 4317
OTLP_HTTP_PORT = 4318
ROUTED_PORT = 4319
METRICS_PORT = 8888
HEALTH_PORT = 13133

# Every span is recorded and sent; the collector decides (a ratio in the SDK would drop error traces
# before anyone knew they failed). Parent-based: a caller's explicit "not sampled" is still honoured.
SDK_SAMPLER = "parentbased_always_on"
# The only X-Ray action the awsxray exporter calls (its telemetry records stay off). X-Ray defines no
# resource type for it, so "*" is the only Resource it takes.
XRAY_ACTIONS = ("xray:PutTraceSegments",)
# Traces held in memory while their decision is pending (the processor's default; 512 MiB is ample at
# the service's rates, and memory_limiter sheds load before the limit).
PENDING_TRACES = 50_000


@dataclass(frozen=True)
class TraceExport:
    """What the workloads need to send spans to the collector: the environment of every container (the
    standard OpenTelemetry SDK variables) and who to allow egress to."""

    endpoint: str
    namespace: str
    pod_labels: Mapping[str, str]
    port: int

    def destination(self) -> Destination:
        return Destination(self.namespace, self.pod_labels, self.port)

    def env(self) -> dict[str, str]:
        return {
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_TRACES_SAMPLER": SDK_SAMPLER,
        }


def trace_export() -> TraceExport:
    return TraceExport(
        endpoint=f"http://{RELEASE}.{NAMESPACE}:{OTLP_HTTP_PORT}",
        namespace=NAMESPACE,
        pod_labels=POD_LABELS,
        port=OTLP_HTTP_PORT,
    )


def xray_policy() -> str:
    return policy_document(
        [{"Sid": "SendTraces", "Effect": "Allow", "Action": list(XRAY_ACTIONS), "Resource": "*"}]
    )


def _on_pod_ip(port: int) -> str:
    # Listen on the pod's address only (the chart sets MY_POD_IP), not on every interface.
    return f"${{env:MY_POD_IP}}:{port}"


def sampling_policies(settings: TracingSettings) -> list[dict[str, Any]]:
    """Kept if any policy says so: every trace with an error span, and ``sampleRatio`` of all traces
    (by a hash of the trace id, so every replica decides the same way for the same trace)."""
    return [
        {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}},
        {
            "name": "ratio",
            "type": "probabilistic",
            "probabilistic": {"sampling_percentage": round(settings.sample_ratio * 100, 4)},
        },
    ]


def collector_config(settings: TracingSettings, region: str) -> dict[str, Any]:
    """The whole collector configuration: route by trace id, then tail-sample and export to X-Ray."""
    return {
        "extensions": {"health_check": {"endpoint": _on_pod_ip(HEALTH_PORT)}},
        "receivers": {
            "otlp": {
                "protocols": {
                    "grpc": {"endpoint": _on_pod_ip(OTLP_GRPC_PORT)},
                    "http": {"endpoint": _on_pod_ip(OTLP_HTTP_PORT)},
                }
            },
            "otlp/routed": {"protocols": {"grpc": {"endpoint": _on_pod_ip(ROUTED_PORT)}}},
        },
        "processors": {
            "memory_limiter": {"check_interval": "1s", "limit_percentage": 80, "spike_limit_percentage": 25},
            "tail_sampling": {
                "decision_wait": f"{settings.decision_wait_seconds}s",
                "num_traces": PENDING_TRACES,
                "policies": sampling_policies(settings),
            },
            "batch": {},
        },
        "exporters": {
            "loadbalancing": {
                "routing_key": "traceID",
                # Collector to collector inside the namespace (NetworkPolicy-bound), no TLS.
                "protocol": {"otlp": {"tls": {"insecure": True}, "timeout": "5s"}},
                "resolver": {
                    "dns": {
                        "hostname": f"{ROUTED_SERVICE}.{NAMESPACE}.svc.cluster.local",
                        "port": str(ROUTED_PORT),
                    }
                },
            },
            "awsxray": {"region": region},
        },
        "service": {
            "extensions": ["health_check"],
            "pipelines": {
                "traces": {
                    "receivers": ["otlp"],
                    "processors": ["memory_limiter"],
                    "exporters": ["loadbalancing"],
                },
                "traces/sampled": {
                    "receivers": ["otlp/routed"],
                    "processors": ["memory_limiter", "tail_sampling", "batch"],
                    "exporters": ["awsxray"],
                },
            },
            "telemetry": {
                "metrics": {
                    "readers": [
                        {
                            "pull": {
                                "exporter": {"prometheus": {"host": "${env:MY_POD_IP}", "port": METRICS_PORT}}
                            }
                        }
                    ]
                }
            },
        },
    }


def _security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _port(port: int, app_protocol: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"enabled": True, "containerPort": port, "servicePort": port, "protocol": "TCP"}
    if app_protocol:
        spec["appProtocol"] = app_protocol
    return spec


def chart_values(settings: TracingSettings, region: str, role_arn: pulumi.Input[str]) -> dict[str, Any]:
    return {
        "mode": "deployment",
        "fullnameOverride": RELEASE,
        "image": {"repository": IMAGE_REPOSITORY, "tag": settings.image_tag, "digest": settings.image_digest},
        "command": {"name": COMMAND},
        # Not merged with the chart's defaults: only the receivers and pipelines declared above exist.
        "alternateConfig": collector_config(settings, region),
        "replicaCount": settings.replicas,
        "serviceAccount": {
            "create": True,
            "name": SERVICE_ACCOUNT,
            # IRSA projects its own token; the collector never calls the Kubernetes API.
            "automountServiceAccountToken": False,
            "annotations": {
                "eks.amazonaws.com/role-arn": role_arn,
                "eks.amazonaws.com/sts-regional-endpoints": "true",
            },
        },
        "podSecurityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "fsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "securityContext": _security_context(),
        # GOMEMLIMIT (useGOMEMLIMIT, on by default) and memory_limiter both derive from the memory limit.
        "resources": {
            "requests": {"cpu": "100m", "memory": "256Mi"},
            "limits": {"cpu": "1", "memory": "512Mi"},
        },
        "ports": {
            "otlp": _port(OTLP_GRPC_PORT, "grpc"),
            "otlp-http": _port(OTLP_HTTP_PORT),
            "otlp-routed": _port(ROUTED_PORT, "grpc"),
            METRICS_PORT_NAME: _port(METRICS_PORT),
            "jaeger-compact": {"enabled": False},
            "jaeger-thrift": {"enabled": False},
            "jaeger-grpc": {"enabled": False},
            "zipkin": {"enabled": False},
        },
        "service": {"type": "ClusterIP"},
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": POD_LABELS},
            }
        ],
        # Declared by the component (PDB, NetworkPolicies), so the plan shows and checks them.
        "podDisruptionBudget": {"enabled": False},
        "networkPolicy": {"enabled": False},
    }


def policy_plans(app_namespace: str, scraper: tuple[str, Mapping[str, str]] | None) -> list[PolicyPlan]:
    """Default-deny; OTLP from the API and worker pods; routed spans between collectors; metrics from
    Prometheus; out: DNS, the other collectors, HTTPS (X-Ray, STS)."""
    ingress = k8s.networking.v1.NetworkPolicyIngressRuleArgs
    egress = k8s.networking.v1.NetworkPolicyEgressRuleArgs
    collectors = peer_pods(NAMESPACE, POD_LABELS)
    clients = [peer_pods(app_namespace, selector_labels(c)) for c in ("api", "worker")]
    rules = [
        ingress(from_=clients, ports=[tcp(OTLP_HTTP_PORT), tcp(OTLP_GRPC_PORT)]),
        ingress(from_=[collectors], ports=[tcp(ROUTED_PORT)]),
    ]
    if scraper is not None:
        rules.append(ingress(from_=[peer_pods(*scraper)], ports=[tcp(METRICS_PORT)]))
    dns = egress(
        to=[peer_pods("kube-system", {"k8s-app": "kube-dns"})],
        ports=[k8s.networking.v1.NetworkPolicyPortArgs(protocol=p, port=DNS_PORT) for p in ("UDP", "TCP")],
    )
    anywhere = k8s.networking.v1.NetworkPolicyPeerArgs(
        ip_block=k8s.networking.v1.IPBlockArgs(cidr="0.0.0.0/0")
    )
    return [
        PolicyPlan("default-deny", {}, ingress=[], egress=[]),
        PolicyPlan(
            "collector",
            POD_LABELS,
            ingress=rules,
            egress=[
                dns,
                egress(to=[collectors], ports=[tcp(ROUTED_PORT)]),
                egress(to=[anywhere], ports=[tcp(HTTPS_PORT)]),
            ],
        ),
    ]


@dataclass(frozen=True)
class TracingArgs:
    settings: TracingSettings
    # The cluster's provider: every Kubernetes object and the Helm release are applied with it.
    provider: k8s.Provider
    region: str
    # IRSA for the collector.
    oidc_provider_arn: pulumi.Input[str]
    oidc_issuer: pulumi.Input[str]
    # The API's and worker's namespace: the only senders admitted.
    app_namespace: str
    # Namespace and pod labels of the Prometheus that may scrape the collector's metrics (None: nobody).
    scraper: tuple[str, Mapping[str, str]] | None = None


class Tracing(pulumi.ComponentResource):
    """The OpenTelemetry Collector (Deployment from the official chart) exporting to AWS X-Ray."""

    namespace: str
    export: TraceExport
    role_arn: pulumi.Output[str]
    # The Service labels and port name a ServiceMonitor selects to scrape the collector's own metrics.
    metrics_service_labels: Mapping[str, str]
    metrics_port_name: str

    def __init__(self, name: str, args: TracingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ai-agents:tracing:Tracing", name, None, opts)
        on_cluster = pulumi.ResourceOptions(parent=self, provider=args.provider)
        settings = args.settings

        ns = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=NAMESPACE, labels=restricted_namespace()),
            opts=on_cluster,
        )
        in_ns = on_cluster.merge(pulumi.ResourceOptions(depends_on=[ns]))
        role = irsa_role(
            f"{name}-collector",
            oidc_provider_arn=args.oidc_provider_arn,
            oidc_issuer=args.oidc_issuer,
            namespace=NAMESPACE,
            service_account=SERVICE_ACCOUNT,
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.iam.RolePolicy(
            f"{name}-collector-xray",
            role=role.name,
            policy=xray_policy(),
            opts=pulumi.ResourceOptions(parent=self),
        )
        k8s.helm.v3.Release(
            f"{name}-collector",
            name=RELEASE,
            chart=CHART,
            version=settings.chart_version,
            namespace=ns.metadata.name,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=CHART_REPO),
            values=chart_values(settings, args.region, role.arn),
            # A failed upgrade rolls back instead of leaving a half-configured collector.
            atomic=True,
            cleanup_on_fail=True,
            opts=on_cluster,
        )
        self._routed_service(name, in_ns)
        if settings.replicas > 1:
            k8s.policy.v1.PodDisruptionBudget(
                f"{name}-pdb",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=RELEASE, namespace=NAMESPACE),
                spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                    max_unavailable=1, selector=k8s.meta.v1.LabelSelectorArgs(match_labels=POD_LABELS)
                ),
                opts=in_ns,
            )
        for plan in policy_plans(args.app_namespace, args.scraper):
            k8s.networking.v1.NetworkPolicy(
                f"{name}-netpol-{plan.name}",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=plan.name, namespace=NAMESPACE),
                spec=policy_spec(plan),
                opts=in_ns,
            )

        self.namespace = NAMESPACE
        self.export = trace_export()
        self.role_arn = role.arn
        self.metrics_service_labels = SERVICE_LABELS
        self.metrics_port_name = METRICS_PORT_NAME
        self.register_outputs(
            {"namespace": self.namespace, "endpoint": self.export.endpoint, "role_arn": self.role_arn}
        )

    @staticmethod
    def _routed_service(name: str, opts: pulumi.ResourceOptions) -> None:
        """Headless: resolves to every collector pod, which the loadbalancing exporter routes over."""
        k8s.core.v1.Service(
            f"{name}-sampling-svc",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=ROUTED_SERVICE, namespace=NAMESPACE, labels=POD_LABELS),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="ClusterIP",
                cluster_ip="None",
                selector=POD_LABELS,
                # Only ready collectors receive routed spans.
                publish_not_ready_addresses=False,
                ports=[
                    k8s.core.v1.ServicePortArgs(
                        name="otlp-routed", port=ROUTED_PORT, target_port=ROUTED_PORT, protocol="TCP"
                    )
                ],
            ),
            opts=opts,
        )
