"""The service on the cluster: namespace, identities, config, migrations Job, API, workers, ingress.

Secure by construction rather than by option: every pod runs as a non-root user with a read-only root
filesystem, no capabilities, seccomp RuntimeDefault and no API token; images are pinned by digest; the
namespace enforces Pod Security ``restricted``; traffic is denied unless a NetworkPolicy below allows
it. No Kubernetes Secret carries an application secret: the pods read theirs from AWS Secrets Manager
through IRSA (the ConfigMap holds only the secrets' ARNs).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumi_kubernetes as k8s

from components.images import IMAGE_NAMES, ImageName
from components.platform import INGRESS_CONTROLLER_LABELS, restricted_namespace
from infra.config import AppSettings, HpaSettings

Component = ImageName  # api, worker, migrations: one image, one service account, one role each

API_PORT = 8000
METRICS_PORT = 9090
DNS_PORT = 53
HTTPS_PORT = 443
ACME_SOLVER_PORT = 8089
# A high UID/GID outside any host range (the images create this user; see app/docker/).
RUN_AS = 10001
APP_NAME = "ai-agents"
DATABASE_USER = "app"
# The worker's Celery task limits (the app's defaults, stated here because the pod's grace period
# is derived from them: SIGTERM lets running tasks finish, and no task outlives the hard limit).
TASK_SOFT_TIME_LIMIT_SECONDS = 240
TASK_TIME_LIMIT_SECONDS = 300
SECRETS_CACHE_TTL_SECONDS = 300
# The API: the load balancer and kube-proxy stop sending new requests during the preStop pause,
# then uvicorn drains in-flight requests within its own 20 s graceful-shutdown timeout.
API_PRESTOP_SECONDS = 10
API_SHUTDOWN_SECONDS = 20
# Paths published on the internet. /metrics is deliberately absent: it is scraped in-cluster only.
PUBLIC_PREFIXES = ("/webhook", "/api", "/health", "/docs")
PUBLIC_EXACT = ("/openapi.json",)  # the schema /docs renders

ISSUER_ANNOTATION = "cert-manager.io/cluster-issuer"
IRSA_ANNOTATION = "eks.amazonaws.com/role-arn"
# The Secret cert-manager writes the API's certificate into (TLS material, not an application secret).
TLS_SECRET = "api-tls"  # noqa: S105


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
class Ingressing:
    """What the platform installed for publishing the API."""

    hostname: str
    cluster_issuer: str
    ingress_class: str
    controller_namespace: str
    # HTTP-01 challenges are answered by solver pods in this namespace; they must be reachable.
    acme_http01: bool
    # Applied first: the ingress controller (its webhook validates Ingresses) and the ClusterIssuer.
    depends_on: Sequence[pulumi.Resource] = ()


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


# --- pure builders (no resources), shared by the three pod templates -------------------------------


def selector_labels(component: Component) -> dict[str, str]:
    return {"app.kubernetes.io/name": APP_NAME, "app.kubernetes.io/component": component}


def labels(component: Component, version: str) -> dict[str, str]:
    return {
        **selector_labels(component),
        "app.kubernetes.io/version": version,
        "app.kubernetes.io/part-of": "ai-agents-platform",
        "app.kubernetes.io/managed-by": "pulumi",
    }


def digest_of(image_ref: str) -> str:
    """The hex digest of ``repo@sha256:<hex>``; a tag-only reference is refused."""
    _, sep, digest = image_ref.partition("@sha256:")
    if not sep or len(digest) != 64:
        raise ValueError(f"image {image_ref!r} is not pinned by sha256 digest")
    return digest


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
    }


def resources(
    cpu: str, memory: str, cpu_limit: str, memory_limit: str
) -> k8s.core.v1.ResourceRequirementsArgs:
    return k8s.core.v1.ResourceRequirementsArgs(
        requests={"cpu": cpu, "memory": memory}, limits={"cpu": cpu_limit, "memory": memory_limit}
    )


RESOURCES: dict[Component, k8s.core.v1.ResourceRequirementsArgs] = {
    # The seeds' limits (api 1 CPU / 1 GiB, worker 2 CPU / 2 GiB) with requests at half.
    "api": resources("500m", "512Mi", "1", "1Gi"),
    "worker": resources("1", "1Gi", "2", "2Gi"),
    "migrations": resources("100m", "256Mi", "500m", "512Mi"),
}


def container_security_context() -> k8s.core.v1.SecurityContextArgs:
    return k8s.core.v1.SecurityContextArgs(
        run_as_non_root=True,
        run_as_user=RUN_AS,
        run_as_group=RUN_AS,
        allow_privilege_escalation=False,
        read_only_root_filesystem=True,
        privileged=False,
        capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
        seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
    )


def http_probe(
    path: str, *, period: int, timeout: int = 3, failures: int = 3, port: str = "http"
) -> k8s.core.v1.ProbeArgs:
    return k8s.core.v1.ProbeArgs(
        http_get=k8s.core.v1.HTTPGetActionArgs(path=path, port=port),
        period_seconds=period,
        timeout_seconds=timeout,
        failure_threshold=failures,
    )


@dataclass(frozen=True)
class ContainerPlan:
    """What differs between the api, worker and migrations containers; the rest is shared."""

    component: Component
    image: pulumi.Input[str]
    ports: Sequence[k8s.core.v1.ContainerPortArgs] = ()
    command: Sequence[str] | None = None
    extra_env: Mapping[str, pulumi.Input[str]] | None = None
    startup_probe: k8s.core.v1.ProbeArgs | None = None
    liveness_probe: k8s.core.v1.ProbeArgs | None = None
    readiness_probe: k8s.core.v1.ProbeArgs | None = None
    lifecycle: k8s.core.v1.LifecycleArgs | None = None
    grace_seconds: int = 30
    restart_policy: str | None = None


def pod_spec(plan: ContainerPlan, config_map: pulumi.Input[str]) -> k8s.core.v1.PodSpecArgs:
    """The hardened pod every component runs in: one container, /tmp the only writable path."""
    container = k8s.core.v1.ContainerArgs(
        name=plan.component,
        image=plan.image,
        # Pinned by digest, so IfNotPresent can never run a different image than the one declared.
        image_pull_policy="IfNotPresent",
        command=list(plan.command) if plan.command else None,
        ports=list(plan.ports),
        env_from=[
            k8s.core.v1.EnvFromSourceArgs(config_map_ref=k8s.core.v1.ConfigMapEnvSourceArgs(name=config_map))
        ],
        env=[k8s.core.v1.EnvVarArgs(name=k, value=v) for k, v in (plan.extra_env or {}).items()] or None,
        resources=RESOURCES[plan.component],
        security_context=container_security_context(),
        startup_probe=plan.startup_probe,
        liveness_probe=plan.liveness_probe,
        readiness_probe=plan.readiness_probe,
        lifecycle=plan.lifecycle,
        volume_mounts=[k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp")],  # noqa: S108
    )
    return k8s.core.v1.PodSpecArgs(
        service_account_name=plan.component,
        # IRSA's web-identity token is projected by the EKS webhook on its own; no pod needs the
        # Kubernetes API, so the API token is not mounted.
        automount_service_account_token=False,
        enable_service_links=False,
        security_context=k8s.core.v1.PodSecurityContextArgs(
            run_as_non_root=True,
            run_as_user=RUN_AS,
            run_as_group=RUN_AS,
            fs_group=RUN_AS,
            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
        ),
        containers=[container],
        volumes=[
            k8s.core.v1.VolumeArgs(
                name="tmp", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit="256Mi")
            )
        ],
        termination_grace_period_seconds=plan.grace_seconds,
        restart_policy=plan.restart_policy,
        topology_spread_constraints=zone_spread(plan.component) if plan.restart_policy is None else None,
    )


def zone_spread(component: Component) -> list[k8s.core.v1.TopologySpreadConstraintArgs]:
    """Even across zones (a zone outage leaves most replicas running), then across nodes."""
    selector = k8s.meta.v1.LabelSelectorArgs(match_labels=selector_labels(component))
    return [
        k8s.core.v1.TopologySpreadConstraintArgs(
            max_skew=1,
            topology_key=key,
            when_unsatisfiable=when,
            label_selector=selector,
            # Spread each ReplicaSet on its own, so a rolling update is never blocked by old pods.
            match_label_keys=["pod-template-hash"],
        )
        for key, when in (
            ("topology.kubernetes.io/zone", "DoNotSchedule"),
            ("kubernetes.io/hostname", "ScheduleAnyway"),
        )
    ]


def api_plan(image: pulumi.Input[str]) -> ContainerPlan:
    return ContainerPlan(
        component="api",
        image=image,
        ports=[k8s.core.v1.ContainerPortArgs(name="http", container_port=API_PORT, protocol="TCP")],
        # Liveness and start-up only ask "is the process serving?" (/health makes no dependency call):
        # a database outage must not restart every API pod. Readiness checks the dependencies.
        startup_probe=http_probe("/health", period=10, failures=30),
        liveness_probe=http_probe("/health", period=10),
        readiness_probe=http_probe("/api/v1/ready", period=5, timeout=6),
        lifecycle=k8s.core.v1.LifecycleArgs(
            pre_stop=k8s.core.v1.LifecycleHandlerArgs(
                sleep=k8s.core.v1.SleepActionArgs(seconds=API_PRESTOP_SECONDS)
            )
        ),
        grace_seconds=API_PRESTOP_SECONDS + API_SHUTDOWN_SECONDS + 15,
    )


def worker_plan(image: pulumi.Input[str]) -> ContainerPlan:
    ping = "celery -A app.worker.celery_app inspect ping --timeout 10 -d celery@$HOSTNAME"
    return ContainerPlan(
        component="worker",
        image=image,
        ports=[k8s.core.v1.ContainerPortArgs(name="metrics", container_port=METRICS_PORT, protocol="TCP")],
        # The broker round trip proves the consumer loop is alive; it costs a Python start-up, so it
        # runs once a minute and tolerates a slow broker before restarting anything.
        liveness_probe=k8s.core.v1.ProbeArgs(
            exec_=k8s.core.v1.ExecActionArgs(command=["sh", "-c", ping]),
            initial_delay_seconds=30,
            period_seconds=60,
            timeout_seconds=20,
            failure_threshold=3,
        ),
        readiness_probe=k8s.core.v1.ProbeArgs(
            tcp_socket=k8s.core.v1.TCPSocketActionArgs(port="metrics"), period_seconds=10
        ),
        # Warm shutdown: SIGTERM stops consuming and lets running tasks finish; none outlives the hard
        # limit, so the pod is never killed mid-task (late acks would redeliver it anyway).
        grace_seconds=TASK_TIME_LIMIT_SECONDS + 30,
    )


def migrations_plan(image: pulumi.Input[str], master_secret_arn: pulumi.Input[str]) -> ContainerPlan:
    return ContainerPlan(
        component="migrations",
        image=image,
        # Alembic upgrade head under a PostgreSQL advisory lock (taken by the app), as the DB owner.
        command=["python", "-m", "app", "migrate"],
        extra_env={"DATABASE_MASTER_SECRET_ARN": master_secret_arn},
        restart_policy="Never",
    )


def ingress_annotations(settings: AppSettings, cluster_issuer: str) -> dict[str, str]:
    """TLS from cert-manager, HTTPS only, body size, per-client rate limit, CORS (security headers are
    added controller-wide, see components/platform.py)."""
    prefix = "nginx.ingress.kubernetes.io"
    annotations = {
        ISSUER_ANNOTATION: cluster_issuer,
        f"{prefix}/ssl-redirect": "true",
        f"{prefix}/force-ssl-redirect": "true",
        f"{prefix}/proxy-body-size": f"{settings.max_body_kib}k",
        f"{prefix}/limit-rps": str(settings.rate_limit_rps),
        f"{prefix}/limit-burst-multiplier": "3",
        f"{prefix}/proxy-connect-timeout": "5",
        f"{prefix}/proxy-read-timeout": "30",
        f"{prefix}/proxy-send-timeout": "30",
    }
    if settings.cors_origins:
        annotations |= {
            f"{prefix}/enable-cors": "true",
            f"{prefix}/cors-allow-origin": ", ".join(settings.cors_origins),
            f"{prefix}/cors-allow-methods": "GET, POST, OPTIONS",
            f"{prefix}/cors-allow-headers": "Authorization, Content-Type, X-ServiceDesk-Signature",
            f"{prefix}/cors-allow-credentials": "false",
            f"{prefix}/cors-max-age": "600",
        }
    return annotations


def ingress_paths(service: pulumi.Input[str]) -> list[k8s.networking.v1.HTTPIngressPathArgs]:
    backend = k8s.networking.v1.IngressBackendArgs(
        service=k8s.networking.v1.IngressServiceBackendArgs(
            name=service, port=k8s.networking.v1.ServiceBackendPortArgs(name="http")
        )
    )
    return [
        k8s.networking.v1.HTTPIngressPathArgs(path=path, path_type=kind, backend=backend)
        for kind, paths in (("Prefix", PUBLIC_PREFIXES), ("Exact", PUBLIC_EXACT))
        for path in paths
    ]


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


def peer_pods(namespace: str, pod_labels: Mapping[str, str]) -> k8s.networking.v1.NetworkPolicyPeerArgs:
    return k8s.networking.v1.NetworkPolicyPeerArgs(
        namespace_selector=k8s.meta.v1.LabelSelectorArgs(
            match_labels={"kubernetes.io/metadata.name": namespace}
        ),
        pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=dict(pod_labels)),
    )


def tcp(port: pulumi.Input[int | str]) -> k8s.networking.v1.NetworkPolicyPortArgs:
    return k8s.networking.v1.NetworkPolicyPortArgs(protocol="TCP", port=port)


def egress_rules(
    vpc_cidr: str, redis_port: pulumi.Input[int], *, redis: bool
) -> list[k8s.networking.v1.NetworkPolicyEgressRuleArgs]:
    """DNS to CoreDNS, Postgres (and Redis) inside the VPC, HTTPS anywhere (AWS APIs, LLM, SDP)."""
    dns = k8s.networking.v1.NetworkPolicyEgressRuleArgs(
        to=[peer_pods("kube-system", {"k8s-app": "kube-dns"})],
        ports=[k8s.networking.v1.NetworkPolicyPortArgs(protocol=p, port=DNS_PORT) for p in ("UDP", "TCP")],
    )
    vpc = [k8s.networking.v1.NetworkPolicyPeerArgs(ip_block=k8s.networking.v1.IPBlockArgs(cidr=vpc_cidr))]
    data_ports = [tcp(5432), *([tcp(redis_port)] if redis else [])]
    return [
        dns,
        k8s.networking.v1.NetworkPolicyEgressRuleArgs(to=vpc, ports=data_ports),
        k8s.networking.v1.NetworkPolicyEgressRuleArgs(
            to=[
                k8s.networking.v1.NetworkPolicyPeerArgs(
                    ip_block=k8s.networking.v1.IPBlockArgs(cidr="0.0.0.0/0")
                )
            ],
            ports=[tcp(HTTPS_PORT)],
        ),
    ]


# --- the component ---------------------------------------------------------------------------------


class Workloads(pulumi.ComponentResource):
    """Namespace, service accounts, ConfigMap, migrations Job, API and worker with HPA, PDB, policies."""

    namespace: str
    config_map_name: pulumi.Output[str]
    migrations_job_name: pulumi.Output[str]
    api_url: str

    def __init__(self, name: str, args: WorkloadsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ai-agents:workloads:Workloads", name, None, opts)
        for what, given in (("image", args.images), ("IRSA role", args.role_arns)):
            if missing := set(IMAGE_NAMES) - set(given):
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
        accounts = [self._service_account(component) for component in IMAGE_NAMES]
        config = self._config_map()
        ready = [*accounts, config]

        migrations = self._migrations_job(config.metadata.name, ready)
        # Both run the new code against the new schema: neither rolls out before the Job succeeded.
        after_migrations = [*ready, migrations]
        api = self._deployment(api_plan(args.images["api"]), settings.api, config, after_migrations)
        worker = self._deployment(
            worker_plan(args.images["worker"]), settings.worker, config, after_migrations
        )
        self._autoscaling("api", api, settings.api)
        self._autoscaling("worker", worker, settings.worker)
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
                active_deadline_seconds=900,
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
            opts=self._in_ns.merge(pulumi.ResourceOptions(depends_on=list(after))),
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
                        max_unavailable=0, max_surge="25%"
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
                # Scale down slowly: a burst of webhooks often comes back.
                behavior=k8s.autoscaling.v2.HorizontalPodAutoscalerBehaviorArgs(
                    scale_down=k8s.autoscaling.v2.HPAScalingRulesArgs(stabilization_window_seconds=300)
                ),
            ),
            opts=self._in_ns,
        )
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
        ingress = self._args.ingress
        k8s.networking.v1.Ingress(
            f"{self._name}-ingress",
            metadata=self._meta(
                "api", "api", annotations=ingress_annotations(self._args.settings, ingress.cluster_issuer)
            ),
            spec=k8s.networking.v1.IngressSpecArgs(
                ingress_class_name=ingress.ingress_class,
                tls=[
                    k8s.networking.v1.IngressTLSArgs(
                        hosts=[ingress.hostname],
                        secret_name=TLS_SECRET,
                    )
                ],
                rules=[
                    k8s.networking.v1.IngressRuleArgs(
                        host=ingress.hostname,
                        http=k8s.networking.v1.HTTPIngressRuleValueArgs(
                            paths=ingress_paths(service.metadata.name)
                        ),
                    )
                ],
            ),
            opts=self._in_ns.merge(pulumi.ResourceOptions(depends_on=[service, *ingress.depends_on])),
        )

    def _network_policy(
        self,
        role: str,
        pod_selector: Mapping[str, str],
        *,
        ingress: Sequence[k8s.networking.v1.NetworkPolicyIngressRuleArgs] | None = None,
        egress: Sequence[k8s.networking.v1.NetworkPolicyEgressRuleArgs] | None = None,
    ) -> None:
        types = [t for t, rules in (("Ingress", ingress), ("Egress", egress)) if rules is not None]
        k8s.networking.v1.NetworkPolicy(
            f"{self._name}-netpol-{role}",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=role, namespace=self.namespace),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=dict(pod_selector) or None),
                policy_types=types,
                ingress=list(ingress) if ingress else None,
                egress=list(egress) if egress else None,
            ),
            opts=self._in_ns,
        )

    def _network_policies(self) -> None:
        args = self._args
        # Everything in the namespace, in and out, is denied unless a policy below allows it.
        self._network_policy("default-deny", {}, ingress=[], egress=[])
        controller = peer_pods(args.ingress.controller_namespace, INGRESS_CONTROLLER_LABELS)
        self._network_policy(
            "api-from-ingress-controller",
            selector_labels("api"),
            ingress=[
                k8s.networking.v1.NetworkPolicyIngressRuleArgs(from_=[controller], ports=[tcp(API_PORT)])
            ],
        )
        redis_port = args.backends.redis_port
        for component in ("api", "worker"):
            self._network_policy(
                f"{component}-egress",
                selector_labels(component),
                egress=egress_rules(args.vpc_cidr, redis_port, redis=True),
            )
        self._network_policy(
            "migrations-egress",
            selector_labels("migrations"),
            egress=egress_rules(args.vpc_cidr, redis_port, redis=False),
        )
        if args.ingress.acme_http01:
            # cert-manager answers HTTP-01 challenges from solver pods it starts in this namespace.
            self._network_policy(
                "acme-http01-solver",
                {"acme.cert-manager.io/http01-solver": "true"},
                ingress=[
                    k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                        from_=[controller], ports=[tcp(ACME_SOLVER_PORT)]
                    )
                ],
            )
