"""The service on the cluster: namespace, identities, config, migrations Job, API, workers, ingress.

Secure by construction rather than by option: every pod runs as a non-root user with a read-only root
filesystem, no capabilities, seccomp RuntimeDefault and no API token; images are pinned by digest; the
namespace enforces Pod Security ``restricted``; traffic is denied unless a NetworkPolicy
(network_policies.py) allows it. No Kubernetes Secret carries an application secret: the pods read theirs from AWS Secrets Manager
through IRSA (the ConfigMap holds only the secrets' ARNs).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s

from components.platform import restricted_namespace
from components.tracing import TraceExport
from components.workloads.contract import (
    API_PORT,
    COMPONENTS,
    DATABASE_SSLMODE,
    METRICS_PORT,
    RDS_CA_BUNDLE_PATH,
    Component,
    labels,
    selector_labels,
)
from components.workloads.ingress import (
    ENVOY_API,
    GATEWAY_API,
    Ingressing,
    backend_traffic_spec,
    cors_spec,
    routes,
)
from components.workloads.network_policies import PolicyPlan, policy_plans, policy_spec
from components.workloads.pods import (
    TASK_SOFT_TIME_LIMIT_SECONDS,
    TASK_TIME_LIMIT_SECONDS,
    ContainerPlan,
    api_plan,
    migrations_plan,
    pod_spec,
    worker_plan,
)
from components.workloads.scaling import (
    KEDA_API,
    REDIS_AUTH,
    ROLLOUT_SURGE_PERCENT,
    behavior_args,
    limit_range_item,
    quota_hard,
    redis_address,
    scaled_object_spec,
    trigger_authentication_spec,
)
from components.workloads.settings import AppSettings, HpaSettings

# The role the app connects to PostgreSQL as, with IAM authentication (created by the migrations).
DATABASE_USER = "app"
SECRETS_CACHE_TTL_SECONDS = 300
IRSA_ANNOTATION = "eks.amazonaws.com/role-arn"


@dataclass(frozen=True)
class Backends:
    """Where the service's dependencies live; secrets are referenced by ARN, never by value."""

    database_host: pulumi.Input[str]
    database_port: pulumi.Input[int]
    database_name: pulumi.Input[str]
    database_master_secret_arn: pulumi.Input[str]
    redis_host: pulumi.Input[str]
    redis_port: pulumi.Input[int]
    redis_auth_secret_arn: pulumi.Input[str]
    llm_api_key_secret_arn: pulumi.Input[str]
    tenant_secret_prefix: pulumi.Input[str]


@dataclass(frozen=True)
class WorkloadsArgs:
    settings: AppSettings
    environment: Literal["staging", "production"]
    region: str
    provider: k8s.Provider
    # Image references by digest (``repo@sha256:…``), from the Images component.
    images: Mapping[str, pulumi.Input[str]]
    # IRSA roles for the service accounts of the same names, from the identity component.
    role_arns: Mapping[str, pulumi.Input[str]]
    backends: Backends
    ingress: Ingressing
    # Postgres and Redis egress is allowed only into the VPC.
    vpc_cidr: str
    # The KEDA release: the worker's ScaledObject and TriggerAuthentication wait for its CRDs.
    autoscaler_dependencies: Sequence[pulumi.Resource]
    # Where the pods send their spans (components/tracing.py); None: spans are not exported.
    tracing: TraceExport | None = None


def digest_of(image_ref: str) -> str:
    """The hex digest of ``repo@sha256:<hex>``; a tag-only reference is refused."""
    _, sep, digest = image_ref.partition("@sha256:")
    if not sep or len(digest) != 64:
        raise ValueError(f"image {image_ref!r} is not pinned by sha256 digest")
    return digest


# How long the migrations may run, and how long Pulumi waits for the Job: longer, by the time a pod
# needs to be scheduled and pull its image, so Pulumi never reports a migration failed (its default wait
# is 10 minutes) while Kubernetes still lets it run.
MIGRATIONS_DEADLINE_SECONDS = 900
MIGRATIONS_WAIT = "20m"


def migrations_job_name(image_ref: str) -> str:
    """One Job per migrations image: a new release gets a new name (and runs once), a re-run does not."""
    return f"migrate-{digest_of(image_ref)[:12]}"


def config_map_name(data: Mapping[str, str]) -> str:
    """Named by content, so a config change rolls the pods (and the ConfigMap can be immutable)."""
    digest = hashlib.sha256(json.dumps(dict(data), sort_keys=True).encode()).hexdigest()
    return f"app-config-{digest[:10]}"


def config_data(args: WorkloadsArgs) -> dict[str, pulumi.Input[str]]:
    """The environment every container reads (non-secret settings; secrets by ARN only)."""
    s, b = args.settings, args.backends
    return {
        "APP_ENV": args.environment,
        "LOG_LEVEL": s.log_level,
        "AWS_REGION": args.region,
        "DATABASE_HOST": b.database_host,
        "DATABASE_PORT": pulumi.Output.from_input(b.database_port).apply(str),
        "DATABASE_NAME": b.database_name,
        "DATABASE_USER": DATABASE_USER,
        "DATABASE_IAM_AUTH": "true",
        # IAM tokens go only to a server whose certificate chains to RDS's CA and names DATABASE_HOST.
        "DATABASE_SSLMODE": DATABASE_SSLMODE,
        "DATABASE_SSLROOTCERT": RDS_CA_BUNDLE_PATH,
        "REDIS_HOST": b.redis_host,
        "REDIS_PORT": pulumi.Output.from_input(b.redis_port).apply(str),
        "REDIS_TLS": "true",
        "REDIS_AUTH_SECRET_ARN": b.redis_auth_secret_arn,
        "LLM_BASE_URL": s.llm_base_url,
        "LLM_MODEL": s.llm_model,
        "LLM_API_KEY_SECRET_ARN": b.llm_api_key_secret_arn,
        "TENANT_SECRET_PREFIX": b.tenant_secret_prefix,
        "WORKER_CONCURRENCY": str(s.worker_concurrency),
        "WORKER_METRICS_PORT": str(METRICS_PORT),
        "TASK_SOFT_TIME_LIMIT_SECONDS": str(TASK_SOFT_TIME_LIMIT_SECONDS),
        "TASK_TIME_LIMIT_SECONDS": str(TASK_TIME_LIMIT_SECONDS),
        "CORS_ORIGINS": ",".join(s.cors_origins),
        "WEBHOOK_MAX_BODY_BYTES": str(s.max_body_kib * 1024),
        "SECRETS_CACHE_TTL_SECONDS": str(SECRETS_CACHE_TTL_SECONDS),
        # OpenTelemetry SDK settings (the service name is per container, pods.py).
        "OTEL_RESOURCE_ATTRIBUTES": f"deployment.environment={args.environment}",
        **(args.tracing.env() if args.tracing else {}),
    }


def hpa_metrics(hpa: HpaSettings) -> list[k8s.autoscaling.v2.MetricSpecArgs]:
    return [
        k8s.autoscaling.v2.MetricSpecArgs(
            type="Resource",
            resource=k8s.autoscaling.v2.ResourceMetricSourceArgs(
                name=resource,
                target=k8s.autoscaling.v2.MetricTargetArgs(type="Utilization", average_utilization=target),
            ),
        )
        for resource, target in (("cpu", hpa.target_cpu_percent), ("memory", hpa.target_memory_percent))
    ]


class Workloads(pulumi.ComponentResource):
    """Namespace (with its quota and limits), service accounts, ConfigMap, migrations Job, the API with its
    HPA and the worker with its KEDA ScaledObject, PDBs, policies."""

    namespace: str
    config_map_name: pulumi.Output[str]
    migrations_job_name: pulumi.Output[str]
    api_url: str

    def __init__(self, name: str, args: WorkloadsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ai-agents:workloads:Workloads", name, None, opts)
        for what, given in (("image", args.images), ("IRSA role", args.role_arns)):
            if missing := set(COMPONENTS) - set(given):
                raise ValueError(f"no {what} for {sorted(missing)}")
        self._name = name
        self._args = args
        self._on_cluster = pulumi.ResourceOptions(parent=self, provider=args.provider)
        settings = args.settings
        self.namespace = settings.namespace

        ns = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=self.namespace, labels=restricted_namespace()),
            opts=self._on_cluster,
        )
        in_ns = self._on_cluster.merge(pulumi.ResourceOptions(depends_on=[ns]))
        self._in_ns = in_ns
        accounts = [self._service_account(component) for component in COMPONENTS]
        config = self._config_map()
        # The quota and the container defaults exist before any pod they should apply to.
        ready = [*accounts, config, *self._limits()]

        migrations = self._migrations_job(config.metadata.name, ready)
        # Both run the new code against the new schema: neither rolls out before the Job succeeded.
        after_migrations = [*ready, migrations]
        api = self._deployment(api_plan(args.images["api"]), settings.api, config, after_migrations)
        worker = self._deployment(
            worker_plan(args.images["worker"]), settings.worker, config, after_migrations
        )
        self._autoscaling("api", api, settings.api)
        self._queue_autoscaling(worker)
        self._disruption_budget("api")
        self._disruption_budget("worker")
        api_service = self._service("api", [("http", API_PORT, "http"), ("metrics", METRICS_PORT, "http")])
        # Headless: only for scraping each worker's metrics (monitoring is a later issue).
        self._service("worker", [("metrics", METRICS_PORT, "metrics")], headless=True)
        self._ingress(api_service)
        self._network_policies()

        self.config_map_name = config.metadata.name
        self.migrations_job_name = migrations.metadata.name
        self.api_url = f"https://{args.ingress.hostname}"
        self.register_outputs(
            {
                "namespace": self.namespace,
                "config_map_name": self.config_map_name,
                "migrations_job_name": self.migrations_job_name,
                "api_url": self.api_url,
            }
        )

    def _meta(
        self,
        name: pulumi.Input[str],
        component: Component,
        annotations: Mapping[str, pulumi.Input[str]] | None = None,
    ) -> k8s.meta.v1.ObjectMetaArgs:
        return k8s.meta.v1.ObjectMetaArgs(
            name=name,
            namespace=self.namespace,
            labels=labels(component, self._args.settings.version),
            annotations=annotations,
        )

    def _service_account(self, component: Component) -> k8s.core.v1.ServiceAccount:
        return k8s.core.v1.ServiceAccount(
            f"{self._name}-{component}-sa",
            metadata=self._meta(
                component,
                component,
                annotations={
                    IRSA_ANNOTATION: self._args.role_arns[component],
                    "eks.amazonaws.com/sts-regional-endpoints": "true",
                },
            ),
            automount_service_account_token=False,
            opts=self._in_ns,
        )

    def _config_map(self) -> k8s.core.v1.ConfigMap:
        data = pulumi.Output.all(**config_data(self._args))
        return k8s.core.v1.ConfigMap(
            f"{self._name}-config",
            metadata=self._meta(data.apply(config_map_name), "api"),
            data=data,
            immutable=True,
            opts=self._in_ns,
        )

    def _migrations_job(
        self, config_map: pulumi.Input[str], after: Sequence[pulumi.Resource]
    ) -> k8s.batch.v1.Job:
        image = self._args.images["migrations"]
        plan = migrations_plan(image, self._args.backends.database_master_secret_arn)
        return k8s.batch.v1.Job(
            f"{self._name}-migrations",
            metadata=self._meta(pulumi.Output.from_input(image).apply(migrations_job_name), "migrations"),
            spec=k8s.batch.v1.JobSpecArgs(
                # Two retries, then the deployment fails loudly instead of rolling out the new code.
                backoff_limit=2,
                active_deadline_seconds=MIGRATIONS_DEADLINE_SECONDS,
                completions=1,
                parallelism=1,
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(
                        labels=labels("migrations", self._args.settings.version)
                    ),
                    spec=pod_spec(plan, config_map),
                ),
            ),
            # No ttlSecondsAfterFinished: the finished Job is the record that this release migrated.
            opts=self._in_ns.merge(
                pulumi.ResourceOptions(
                    depends_on=list(after),
                    custom_timeouts=pulumi.CustomTimeouts(create=MIGRATIONS_WAIT, update=MIGRATIONS_WAIT),
                )
            ),
        )

    def _deployment(
        self,
        plan: ContainerPlan,
        hpa: HpaSettings,
        config: k8s.core.v1.ConfigMap,
        after: Sequence[pulumi.Resource],
    ) -> k8s.apps.v1.Deployment:
        component = plan.component
        return k8s.apps.v1.Deployment(
            f"{self._name}-{component}",
            metadata=self._meta(component, component),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=hpa.min_replicas,
                revision_history_limit=5,
                min_ready_seconds=5,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector_labels(component)),
                # Never below the current capacity during a rollout: surge first, then retire.
                strategy=k8s.apps.v1.DeploymentStrategyArgs(
                    type="RollingUpdate",
                    rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(
                        max_unavailable=0, max_surge=f"{ROLLOUT_SURGE_PERCENT}%"
                    ),
                ),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(
                        labels=labels(component, self._args.settings.version)
                    ),
                    spec=pod_spec(plan, config.metadata.name),
                ),
            ),
            # The HPA owns the replica count after creation; a deployment must not reset it.
            opts=self._in_ns.merge(
                pulumi.ResourceOptions(depends_on=list(after), ignore_changes=["spec.replicas"])
            ),
        )

    def _limits(self) -> list[pulumi.Resource]:
        """A ResourceQuota sized from the stack's own maxima (scaling.py) and per-container limits."""
        quota = k8s.core.v1.ResourceQuota(
            f"{self._name}-quota",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="app", namespace=self.namespace),
            spec=k8s.core.v1.ResourceQuotaSpecArgs(hard=quota_hard(self._args.settings)),
            opts=self._in_ns,
        )
        limits = k8s.core.v1.LimitRange(
            f"{self._name}-limits",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="app", namespace=self.namespace),
            spec=k8s.core.v1.LimitRangeSpecArgs(limits=[limit_range_item()]),
            opts=self._in_ns,
        )
        return [quota, limits]

    def _queue_autoscaling(self, deployment: k8s.apps.v1.Deployment) -> None:
        """KEDA scales the workers on the queue's length; it creates and owns their HPA, so there is no
        HPA of ours for the worker (two HPAs on one Deployment fight over its replica count)."""
        args = self._args
        after_keda = self._in_ns.merge(pulumi.ResourceOptions(depends_on=list(args.autoscaler_dependencies)))
        auth = k8s.apiextensions.CustomResource(
            f"{self._name}-triggerauthentication-{REDIS_AUTH}",
            api_version=KEDA_API,
            kind="TriggerAuthentication",
            metadata=self._meta(REDIS_AUTH, "worker"),
            spec=pulumi.Output.from_input(args.backends.redis_auth_secret_arn).apply(
                lambda arn: trigger_authentication_spec(arn, args.region)
            ),
            opts=after_keda,
        )
        address = redis_address(args.backends.redis_host, args.backends.redis_port)
        k8s.apiextensions.CustomResource(
            f"{self._name}-scaledobject-worker",
            api_version=KEDA_API,
            kind="ScaledObject",
            metadata=self._meta("worker", "worker"),
            spec=pulumi.Output.all(deployment.metadata.name, address).apply(
                lambda v: scaled_object_spec(str(v[0]), str(v[1]), args.settings)
            ),
            opts=after_keda.merge(pulumi.ResourceOptions(depends_on=[auth])),
        )

    def _autoscaling(
        self, component: Component, deployment: k8s.apps.v1.Deployment, hpa: HpaSettings
    ) -> None:
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{self._name}-{component}-hpa",
            metadata=self._meta(component, component),
            spec=k8s.autoscaling.v2.HorizontalPodAutoscalerSpecArgs(
                scale_target_ref=k8s.autoscaling.v2.CrossVersionObjectReferenceArgs(
                    api_version="apps/v1", kind="Deployment", name=deployment.metadata.name
                ),
                min_replicas=hpa.min_replicas,
                max_replicas=hpa.max_replicas,
                metrics=hpa_metrics(hpa),
                # Up fast, down slowly: a burst of webhooks often comes back (settings.py, HpaSettings).
                behavior=behavior_args(hpa),
            ),
            opts=self._in_ns,
        )

    def _disruption_budget(self, component: Component) -> None:
        # One pod at a time during drains and node upgrades, whatever the current replica count.
        k8s.policy.v1.PodDisruptionBudget(
            f"{self._name}-{component}-pdb",
            metadata=self._meta(component, component),
            spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                max_unavailable=1,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector_labels(component)),
            ),
            opts=self._in_ns,
        )

    def _service(
        self, component: Component, ports: Sequence[tuple[str, int, str]], *, headless: bool = False
    ) -> k8s.core.v1.Service:
        return k8s.core.v1.Service(
            f"{self._name}-{component}-svc",
            metadata=self._meta(component, component),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="ClusterIP",
                cluster_ip="None" if headless else None,
                selector=selector_labels(component),
                ports=[
                    k8s.core.v1.ServicePortArgs(name=port_name, port=port, target_port=target, protocol="TCP")
                    for port_name, port, target in ports
                ],
            ),
            opts=self._in_ns,
        )

    def _ingress(self, service: k8s.core.v1.Service) -> None:
        """The API's HTTPRoutes on the edge's Gateway and the Envoy Gateway policies attached to them."""
        ingress, settings = self._args.ingress, self._args.settings
        after = self._in_ns.merge(pulumi.ResourceOptions(depends_on=[service, *ingress.depends_on]))
        for route, spec in routes(ingress, service.metadata.name).items():
            self._custom(GATEWAY_API, "HTTPRoute", route, spec, after)
            rate_limited = route == "api-webhook"
            self._custom(
                ENVOY_API,
                "BackendTrafficPolicy",
                route,
                backend_traffic_spec(settings, route, rate_limited=rate_limited),
                after,
            )
            if settings.cors_origins:
                self._custom(ENVOY_API, "SecurityPolicy", route, cors_spec(settings, route), after)

    def _custom(
        self, api_version: str, kind: str, name: str, spec: dict[str, Any], opts: pulumi.ResourceOptions
    ) -> None:
        k8s.apiextensions.CustomResource(
            f"{self._name}-{kind.lower()}-{name}",
            api_version=api_version,
            kind=kind,
            metadata=self._meta(name, "api"),
            spec=spec,
            opts=opts,
        )

    def _network_policies(self) -> None:
        args = self._args
        plans = policy_plans(
            controller_namespace=args.ingress.controller_namespace,
            vpc_cidr=args.vpc_cidr,
            redis_port=args.backends.redis_port,
            services_also_reach=[args.tracing.destination()] if args.tracing else [],
            controller_labels=args.ingress.controller_labels,
        )
        for plan in plans:
            self._network_policy(plan)

    def _network_policy(self, plan: PolicyPlan) -> None:
        k8s.networking.v1.NetworkPolicy(
            f"{self._name}-netpol-{plan.name}",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=plan.name, namespace=self.namespace),
            spec=policy_spec(plan),
            opts=self._in_ns,
        )
