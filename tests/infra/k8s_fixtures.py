"""Platform, images and workloads composed standalone (as infra/program.py composes them), with fake
AWS inputs of the right shape, so each component can be tested without the AWS components."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulumi_kubernetes as k8s

from components.images import IMAGE_NAMES, Images, ImagesArgs
from components.platform import Platform, PlatformArgs
from components.workloads.component import Backends, Workloads, WorkloadsArgs
from components.workloads.ingress import Ingressing
from infra.config import REPO_ROOT, StackConfig, load_stack_file
from tests.infra.harness import Captured, run

REGION = "eu-west-1"
ACCOUNT = "123456789012"
VPC_CIDR = "10.20.0.0/16"
GIT_SHA = "0123456789abcdef0123456789abcdef01234567"
OIDC_ISSUER = "https://oidc.eks.eu-west-1.amazonaws.com/id/ABCDEF0123456789"
OIDC_PROVIDER_ARN = (
    f"arn:aws:iam::{ACCOUNT}:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABCDEF0123456789"
)
REPOSITORY_URLS = {name: f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/ai-agents-{name}" for name in IMAGE_NAMES}
ROLE_ARNS = {name: f"arn:aws:iam::{ACCOUNT}:role/ai-agents-test-{name}" for name in IMAGE_NAMES}
BACKENDS = Backends(
    database_host="ai-agents-test.cabc.eu-west-1.rds.amazonaws.com",
    database_port=5432,
    database_name="ai_agents",
    database_master_secret_arn=f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:rds!db-master-abcdef",
    redis_host="master.ai-agents-test.abc.euw1.cache.amazonaws.com",
    redis_port=6379,
    redis_auth_secret_arn=f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:ai-agents/test/redis-auth-abcdef",
    llm_api_key_secret_arn=f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:ai-agents/test/llm-abcdef",
    tenant_secret_prefix="ai-agents/test/tenants/",
)

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
JOB = "kubernetes:batch/v1:Job"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
SERVICE = "kubernetes:core/v1:Service"
SERVICE_ACCOUNT = "kubernetes:core/v1:ServiceAccount"
NAMESPACE = "kubernetes:core/v1:Namespace"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
CLUSTER_ISSUER = "kubernetes:cert-manager.io/v1:ClusterIssuer"
RELEASE = "kubernetes:helm.sh/v3:Release"
IMAGE = "docker-build:index:Image"


def stack_config(stack: str, **platform: Any) -> StackConfig:
    config = load_stack_file(stack)
    if platform:
        config = config.model_copy(update={"platform": config.platform.model_copy(update=platform)})
    return config


# Declares more resources on top of the composition (e.g. monitoring), given the provider and workloads.
AfterWorkloads = Callable[[k8s.Provider, Workloads], None]


def compose(config: StackConfig, after_workloads: AfterWorkloads | None = None) -> Captured:
    """Platform, images and workloads as infra/program.py composes them, with literal AWS inputs."""

    def program() -> None:
        provider = k8s.Provider("k8s", kubeconfig="{}")
        platform = Platform(
            "platform",
            PlatformArgs(
                settings=config.platform,
                provider=provider,
                region=REGION,
                oidc_provider_arn=OIDC_PROVIDER_ARN,
                oidc_issuer=OIDC_ISSUER,
            ),
        )
        images = Images(
            "images",
            ImagesArgs(
                repository_urls=dict(REPOSITORY_URLS),
                version=config.app.version,
                git_sha=GIT_SHA,
                context=REPO_ROOT,
            ),
        )
        workloads = Workloads("app", workloads_args(config, provider, platform, images))
        if after_workloads is not None:
            after_workloads(provider, workloads)

    return run(program, stack=config.environment)


def workloads_args(
    config: StackConfig, provider: k8s.Provider, platform: Platform, images: Images
) -> WorkloadsArgs:
    return WorkloadsArgs(
        settings=config.app,
        environment=config.environment,
        region=REGION,
        provider=provider,
        images=images.refs,
        role_arns=dict(ROLE_ARNS),
        backends=BACKENDS,
        ingress=Ingressing(
            hostname=config.public_hostname,
            cluster_issuer=platform.cluster_issuer,
            ingress_class=platform.ingress_class,
            controller_namespace=platform.ingress_namespace,
            acme_http01=config.platform.hosted_zone_id is None,
            depends_on=platform.ingress_dependencies,
        ),
        vpc_cidr=VPC_CIDR,
    )


def pod_spec(captured: Captured, type_token: str, name: str) -> dict[str, Any]:
    return captured.inputs(type_token, name)["spec"]["template"]["spec"]
