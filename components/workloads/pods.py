"""The hardened pods of the api, worker and migrations: what differs between them is a ContainerPlan,
everything else (non-root user, read-only root filesystem, no capabilities, seccomp, no API token,
spread over zones) is shared by :func:`pod_spec`. Pure builders: no resource is declared here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.workloads.contract import (
    API_PORT,
    API_SHUTDOWN_SECONDS,
    METRICS_PORT,
    RUN_AS,
    Component,
    selector_labels,
    service_name,
)

# The worker's Celery task limits (the app's defaults, stated here because the pod's grace period
# is derived from them: SIGTERM lets running tasks finish, and no task outlives the hard limit).
TASK_SOFT_TIME_LIMIT_SECONDS = 240
TASK_TIME_LIMIT_SECONDS = 300
# The API: the load balancer and kube-proxy stop sending new requests during the preStop pause,
# then uvicorn drains in-flight requests within its own graceful-shutdown timeout.
API_PRESTOP_SECONDS = 10


@dataclass(frozen=True)
class PodResources:
    """One container's requests and limits, as Kubernetes quantities. Plain data, so the namespace's
    ResourceQuota and LimitRange (scaling.py) are computed from the very numbers the pods declare."""

    cpu: str
    memory: str
    cpu_limit: str
    memory_limit: str

    def args(self) -> k8s.core.v1.ResourceRequirementsArgs:
        return k8s.core.v1.ResourceRequirementsArgs(
            requests={"cpu": self.cpu, "memory": self.memory},
            limits={"cpu": self.cpu_limit, "memory": self.memory_limit},
        )


POD_RESOURCES: dict[Component, PodResources] = {
    # Limits of 1 CPU / 1 GiB for the api and 2 CPU / 2 GiB for the worker, requests at half.
    "api": PodResources("500m", "512Mi", "1", "1Gi"),
    "worker": PodResources("1", "1Gi", "2", "2Gi"),
    "migrations": PodResources("100m", "256Mi", "500m", "512Mi"),
}
RESOURCES: dict[Component, k8s.core.v1.ResourceRequirementsArgs] = {
    component: spec.args() for component, spec in POD_RESOURCES.items()
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
        # The ConfigMap is shared by every component; the service name is each container's own.
        env=[
            k8s.core.v1.EnvVarArgs(name=k, value=v)
            for k, v in {"OTEL_SERVICE_NAME": service_name(plan.component), **(plan.extra_env or {})}.items()
        ],
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
