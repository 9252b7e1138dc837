"""The whole platform, composed in the order of the architecture diagram (docs/architecture.md).

keys → network → secrets → cluster → database, cache, registry → identity → platform → images →
workloads → monitoring/alarms → exports
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.alarms import Alarms, AlarmsArgs
from components.cache import Cache, CacheArgs
from components.cluster import Cluster, ClusterArgs
from components.database import Database, DatabaseArgs
from components.edge import HTTPS_LISTENER, PROXY_LABELS, PROXY_METRICS_PATH, PROXY_METRICS_PORT
from components.identity import AppIdentity, AppIdentityArgs
from components.images import Images, ImagesArgs, current_git_sha
from components.keda import Keda, KedaArgs
from components.keys import Keys, KeysArgs
from components.monitoring import EDGE_JOB, PROMETHEUS_POD_LABELS, Monitoring, MonitoringArgs, ScrapeTarget
from components.monitoring_values import NAMESPACE as MONITORING_NAMESPACE
from components.network import Network, NetworkArgs
from components.platform import CERT_MANAGER_NAMESPACE, Platform, PlatformArgs
from components.registry import Registry, RegistryArgs
from components.secrets import AppSecrets, AppSecretsArgs
from components.tracing import Tracing, TracingArgs
from components.workloads.component import Backends, Workloads, WorkloadsArgs
from components.workloads.ingress import Ingressing
from infra.config import REPO_ROOT, StackConfig, load_from_pulumi


def resource_prefix(config: StackConfig) -> str:
    """Every physical name starts with this, so two stacks can share an account."""
    return f"ai-agents-{pulumi.get_stack()}"


def data_stores(
    prefix: str,
    config: StackConfig,
    keys: Keys,
    network: Network,
    *,
    cluster_security_group_id: pulumi.Input[str],
    redis_auth_token: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
) -> tuple[Database, Cache]:
    """PostgreSQL and the broker, in the private subnets, admitting only the cluster's security group."""
    database = Database(
        f"{prefix}-db",
        DatabaseArgs(
            settings=config.database,
            vpc_id=network.vpc_id,
            subnet_ids=network.private_subnet_ids,
            allowed_security_group_id=cluster_security_group_id,
            kms_key_arn=keys.arns["rds"],
            secrets_kms_key_arn=keys.arns["secrets"],
            logs_kms_key_arn=keys.arns["logs"],
        ),
        opts,
    )
    cache = Cache(
        f"{prefix}-cache",
        CacheArgs(
            settings=config.cache,
            vpc_id=network.vpc_id,
            subnet_ids=network.private_subnet_ids,
            allowed_security_group_id=cluster_security_group_id,
            auth_token=redis_auth_token,
            kms_key_arn=keys.arns["elasticache"],
            logs_kms_key_arn=keys.arns["logs"],
            protect=config.is_production,
        ),
        opts,
    )
    return database, cache


def export_data_stores(database: Database, cache: Cache) -> None:
    pulumi.export("databaseEndpoint", database.endpoint)
    pulumi.export("databaseMasterSecretArn", database.master_secret_arn)
    pulumi.export("cachePrimaryEndpoint", cache.primary_endpoint)


def observability(
    prefix: str,
    config: StackConfig,
    *,
    cluster: Cluster,
    database: Database,
    cache: Cache,
    after: list[pulumi.Resource],
    opts: pulumi.ResourceOptions,
    also_scrape: Sequence[ScrapeTarget] = (),
) -> Alarms | None:
    """CloudWatch alarms on the data stores and in-cluster monitoring, both paging one SNS topic."""
    if not config.monitoring.enabled:
        return None
    alarms = Alarms(
        f"{prefix}-alarms",
        AlarmsArgs(
            settings=config.monitoring,
            region=config.aws.region,
            database_instance_identifier=database.instance_identifier,
            database_instance_class=config.database.instance_class,
            database_allocated_storage_gib=config.database.allocated_storage_gib,
            cache_replication_group_id=cache.replication_group_id,
            cache_node_count=1 + config.cache.replicas,
            protect=config.is_production,
        ),
        opts,
    )
    Monitoring(
        f"{prefix}-monitoring",
        monitoring_args(
            config,
            provider=cluster.provider,
            alarm_topic_arn=alarms.topic_arn,
            alarm_topic_kms_key_arn=alarms.topic_kms_key_arn,
            oidc_provider_arn=cluster.oidc_provider_arn,
            oidc_issuer=cluster.oidc_issuer,
            after=after,
            also_scrape=also_scrape,
        ),
        opts,
    )
    return alarms


# How components are wired to each other and to the config: functions rather than inline in main(),
# so the component tests (tests/infra/k8s_fixtures.py) compose exactly what the program does.


def platform_args(
    config: StackConfig,
    *,
    provider: k8s.Provider,
    oidc_provider_arn: pulumi.Input[str],
    oidc_issuer: pulumi.Input[str],
) -> PlatformArgs:
    """The cluster add-ons on ``provider``, with IRSA through the cluster's OIDC provider."""
    return PlatformArgs(
        settings=config.platform,
        provider=provider,
        region=config.aws.region,
        oidc_provider_arn=oidc_provider_arn,
        oidc_issuer=oidc_issuer,
        edge=config.edge,
        hostname=config.public_hostname,
        app_namespace=config.app.namespace,
        vpc_cidr=config.network.vpc_cidr,
        monitoring_namespace=MONITORING_NAMESPACE,
        prometheus_labels=PROMETHEUS_POD_LABELS,
    )


def ingressing(config: StackConfig, platform: Platform) -> Ingressing:
    """How the workloads publish the API through what the platform installed."""
    return Ingressing(
        hostname=config.public_hostname,
        gateway_name=platform.edge.gateway_name,
        controller_namespace=platform.ingress_namespace,
        controller_labels=PROXY_LABELS,
        https_listener=HTTPS_LISTENER,
        publish_docs=config.edge.publish_docs,
        request_timeout_seconds=config.edge.request_timeout_seconds,
        depends_on=platform.ingress_dependencies,
    )


def keda_args(
    config: StackConfig,
    *,
    provider: k8s.Provider,
    oidc_provider_arn: pulumi.Input[str],
    oidc_issuer: pulumi.Input[str],
    redis_auth_secret_arn: pulumi.Input[str],
    secrets_kms_key_arn: pulumi.Input[str],
    vpc_cidr: str,
    redis_port: pulumi.Input[int],
) -> KedaArgs:
    """KEDA on ``provider``, reading the Redis AUTH secret through IRSA."""
    return KedaArgs(
        settings=config.keda,
        provider=provider,
        region=config.aws.region,
        oidc_provider_arn=oidc_provider_arn,
        oidc_issuer=oidc_issuer,
        redis_auth_secret_arn=redis_auth_secret_arn,
        secrets_kms_key_arn=secrets_kms_key_arn,
        vpc_cidr=vpc_cidr,
        redis_port=redis_port,
        replicas=2 if config.is_production else 1,
    )


def workloads_args(
    config: StackConfig,
    platform: Platform,
    *,
    provider: k8s.Provider,
    images: Mapping[str, pulumi.Input[str]],
    role_arns: Mapping[str, pulumi.Input[str]],
    backends: Backends,
    vpc_cidr: str,
    keda: Keda,
    tracing: Tracing | None = None,
) -> WorkloadsArgs:
    """The service's workloads, published through what ``platform`` installed."""
    return WorkloadsArgs(
        settings=config.app,
        environment=config.environment,
        region=config.aws.region,
        provider=provider,
        images=images,
        role_arns=role_arns,
        backends=backends,
        ingress=ingressing(config, platform),
        vpc_cidr=vpc_cidr,
        autoscaler_dependencies=keda.crd_dependencies,
        tracing=tracing.export if tracing else None,
    )


def collector_metrics(tracing: Tracing) -> ScrapeTarget:
    """Prometheus scrapes the trace collector's own metrics (spans received, sent, sampled, refused)."""
    return ScrapeTarget(
        name="otel-collector",
        namespace=tracing.namespace,
        selector=tracing.metrics_service_labels,
        port=tracing.metrics_port_name,
    )


def edge_metrics(platform: Platform) -> ScrapeTarget:
    """Prometheus scrapes the edge proxies' Envoy stats (requests and responses per route, upstream
    failures) on the pods themselves: their Service exposes only the listeners."""
    return ScrapeTarget(
        name="edge-proxy",
        namespace=platform.ingress_namespace,
        selector=PROXY_LABELS,
        port=PROXY_METRICS_PORT,
        kind="PodMonitor",
        path=PROXY_METRICS_PATH,
        job=EDGE_JOB,
    )


def tracing_args(
    config: StackConfig,
    *,
    provider: k8s.Provider,
    oidc_provider_arn: pulumi.Input[str],
    oidc_issuer: pulumi.Input[str],
) -> TracingArgs:
    """The collector on ``provider``, admitting the app's pods and (with monitoring) Prometheus."""
    return TracingArgs(
        settings=config.tracing,
        provider=provider,
        region=config.aws.region,
        oidc_provider_arn=oidc_provider_arn,
        oidc_issuer=oidc_issuer,
        app_namespace=config.app.namespace,
        scraper=(MONITORING_NAMESPACE, PROMETHEUS_POD_LABELS) if config.monitoring.enabled else None,
    )


def monitoring_args(
    config: StackConfig,
    *,
    provider: k8s.Provider,
    alarm_topic_arn: pulumi.Input[str],
    alarm_topic_kms_key_arn: pulumi.Input[str],
    oidc_provider_arn: pulumi.Input[str],
    oidc_issuer: pulumi.Input[str],
    after: Sequence[pulumi.Resource],
    also_scrape: Sequence[ScrapeTarget] = (),
) -> MonitoringArgs:
    """Monitoring scraping the app's namespace and cert-manager, alerting to the alarms' topic."""
    return MonitoringArgs(
        settings=config.monitoring,
        provider=provider,
        region=config.aws.region,
        app_namespace=config.app.namespace,
        cert_manager_namespace=CERT_MANAGER_NAMESPACE,
        cert_manager_chart_version=config.platform.cert_manager_chart_version,
        alarm_topic_arn=alarm_topic_arn,
        alarm_topic_kms_key_arn=alarm_topic_kms_key_arn,
        oidc_provider_arn=oidc_provider_arn,
        oidc_issuer=oidc_issuer,
        replicas=2 if config.is_production else 1,
        after=after,
        also_scrape=also_scrape,
    )


def main() -> None:
    config = load_from_pulumi()
    prefix = resource_prefix(config)
    aws_provider = aws.Provider(
        "aws",
        region=config.aws.region,
        default_tags=aws.ProviderDefaultTagsArgs(
            tags={"stack": pulumi.get_stack(), "managed-by": "pulumi", **config.aws.tags}
        ),
    )
    on_aws = pulumi.ResourceOptions(providers={"aws": aws_provider})

    keys = Keys(prefix, KeysArgs(region=config.aws.region, protect=config.is_production), on_aws)
    network = Network(
        prefix,
        NetworkArgs(
            settings=config.network,
            region=config.aws.region,
            cluster_name=prefix,
            flow_log_kms_key_arn=keys.arns["logs"],
        ),
        on_aws,
    )

    secrets = AppSecrets(
        prefix,
        AppSecretsArgs(
            stack=pulumi.get_stack(),
            region=config.aws.region,
            kms_key_arn=keys.arns["secrets"],
            recovery_window_days=30 if config.is_production else 7,
            protect=config.is_production,
        ),
        on_aws,
    )
    cluster = Cluster(
        prefix,
        ClusterArgs(
            settings=config.cluster,
            vpc_id=network.vpc_id,
            private_subnet_ids=network.private_subnet_ids,
            secrets_kms_key_arn=keys.arns["eks"],
            logs_kms_key_arn=keys.arns["logs"],
            log_retention_days=config.network.flow_log_retention_days,
            protect=config.is_production,
        ),
        on_aws,
    )
    database, cache = data_stores(
        prefix,
        config,
        keys,
        network,
        cluster_security_group_id=cluster.security_group_id,
        redis_auth_token=secrets.redis_auth_token,
        opts=on_aws,
    )
    registry = Registry(
        prefix,
        RegistryArgs(settings=config.registry, kms_key_arn=keys.arns["ecr"], protect=config.is_production),
        on_aws,
    )
    identity = AppIdentity(
        prefix,
        AppIdentityArgs(
            namespace=config.app.namespace,
            region=config.aws.region,
            oidc_provider_arn=cluster.oidc_provider_arn,
            oidc_issuer=cluster.oidc_issuer,
            secrets_kms_key_arn=keys.arns["secrets"],
            redis_auth_secret_arn=secrets.redis_auth_secret_arn,
            llm_api_key_secret_arn=secrets.llm_api_key_secret_arn,
            tenant_secret_arn_pattern=secrets.tenant_secret_arn_pattern,
            database_master_secret_arn=database.master_secret_arn,
            database_resource_id=database.resource_id,
        ),
        on_aws,
    )
    platform = Platform(
        prefix,
        platform_args(
            config,
            provider=cluster.provider,
            oidc_provider_arn=cluster.oidc_provider_arn,
            oidc_issuer=cluster.oidc_issuer,
        ),
        on_aws,
    )
    keda = Keda(
        prefix,
        keda_args(
            config,
            provider=cluster.provider,
            oidc_provider_arn=cluster.oidc_provider_arn,
            oidc_issuer=cluster.oidc_issuer,
            redis_auth_secret_arn=secrets.redis_auth_secret_arn,
            secrets_kms_key_arn=keys.arns["secrets"],
            vpc_cidr=network.vpc_cidr,
            redis_port=cache.port,
        ),
        on_aws,
    )
    tracing = (
        Tracing(
            f"{prefix}-tracing",
            tracing_args(
                config,
                provider=cluster.provider,
                oidc_provider_arn=cluster.oidc_provider_arn,
                oidc_issuer=cluster.oidc_issuer,
            ),
            on_aws,
        )
        if config.tracing.enabled
        else None
    )
    images = Images(
        prefix,
        ImagesArgs(
            repository_urls=registry.repository_urls,
            version=config.app.version,
            git_sha=current_git_sha(REPO_ROOT),
            context=REPO_ROOT,
            deploy_build=config.images.deploy_build,
        ),
        on_aws,
    )
    workloads = Workloads(
        prefix,
        workloads_args(
            config,
            platform,
            provider=cluster.provider,
            images=images.refs,
            role_arns=identity.role_arns,
            backends=Backends(
                database_host=database.address,
                database_port=database.port,
                database_name=database.database_name,
                database_master_secret_arn=database.master_secret_arn,
                redis_host=cache.primary_endpoint,
                redis_port=cache.port,
                redis_auth_secret_arn=secrets.redis_auth_secret_arn,
                llm_api_key_secret_arn=secrets.llm_api_key_secret_arn,
                tenant_secret_prefix=secrets.tenant_secret_prefix,
            ),
            vpc_cidr=network.vpc_cidr,
            keda=keda,
            tracing=tracing,
        ),
        on_aws,
    )

    alarms = observability(
        prefix,
        config,
        cluster=cluster,
        database=database,
        cache=cache,
        after=[workloads, *([tracing] if tracing else [])],
        opts=on_aws,
        also_scrape=[edge_metrics(platform), *([collector_metrics(tracing)] if tracing else [])],
    )

    pulumi.export("vpcId", network.vpc_id)
    pulumi.export("privateSubnetIds", network.private_subnet_ids)
    pulumi.export("publicSubnetIds", network.public_subnet_ids)
    pulumi.export("clusterName", cluster.name)
    pulumi.export("kubeconfig", cluster.kubeconfig)
    export_data_stores(database, cache)
    pulumi.export("repositoryUrls", registry.repository_urls)
    pulumi.export("imageDigests", images.digests)
    pulumi.export("imageTag", images.tag)
    pulumi.export("redisAuthSecretArn", secrets.redis_auth_secret_arn)
    pulumi.export("llmApiKeySecretArn", secrets.llm_api_key_secret_arn)
    pulumi.export("tenantSecretPrefix", secrets.tenant_secret_prefix)
    pulumi.export("serviceAccountRoleArns", identity.role_arns)
    pulumi.export("apiUrl", f"https://{config.public_hostname}")
    if alarms is not None:
        pulumi.export("alarmTopicArn", alarms.topic_arn)
