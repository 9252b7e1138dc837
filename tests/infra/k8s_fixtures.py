"""Platform, images and workloads composed standalone, through infra/program.py's wiring functions, with
fake AWS inputs of the right shape, so each component can be tested without the AWS components."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulumi_kubernetes as k8s

from components.images import IMAGE_NAMES, Images, ImagesArgs
from components.keda import Keda
from components.platform import Platform
from components.workloads.component import Backends, Workloads
from infra.config import REPO_ROOT, StackConfig, load_stack_file
from infra.program import keda_args, platform_args, workloads_args
from tests.infra.harness import Captured, run

REGION = "eu-west-1"
ACCOUNT = "123456789012"
VPC_CIDR = "10.20.0.0/16"
GIT_SHA = "0123456789abcdef0123456789abcdef01234567"
OIDC_ISSUER = "https://oidc.eks.eu-west-1.amazonaws.com/id/ABCDEF0123456789"
SECRETS_KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/0b7e0f4e-1111-2222-3333-444455556666"
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
HTTP_ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
GATEWAY = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
BACKEND_TRAFFIC_POLICY = "kubernetes:gateway.envoyproxy.io/v1alpha1:BackendTrafficPolicy"
CLIENT_TRAFFIC_POLICY = "kubernetes:gateway.envoyproxy.io/v1alpha1:ClientTrafficPolicy"
CERTIFICATE = "kubernetes:cert-manager.io/v1:Certificate"
ENVOY_PROXY = "kubernetes:gateway.envoyproxy.io/v1alpha1:EnvoyProxy"
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
    # The program takes the region from the config; the fake ARNs above must be in the same one.
    assert config.aws.region == REGION, f"the fixtures assume {REGION}, {stack} is in {config.aws.region}"
    if platform:
        config = config.model_copy(update={"platform": config.platform.model_copy(update=platform)})
    return config


# Declares more resources on top of the composition (e.g. monitoring), given the provider, the platform
# and the workloads.
AfterWorkloads = Callable[[k8s.Provider, Platform, Workloads], None]


def compose(config: StackConfig, after_workloads: AfterWorkloads | None = None) -> Captured:
    """Platform, images and workloads wired by infra/program.py's own functions, with literal AWS inputs
    (a test region's, a fake cluster's and fake data stores')."""

    def program() -> None:
        provider = k8s.Provider("k8s", kubeconfig="{}")
        platform = Platform(
            "platform",
            platform_args(
                config, provider=provider, oidc_provider_arn=OIDC_PROVIDER_ARN, oidc_issuer=OIDC_ISSUER
            ),
        )
        keda = Keda(
            "keda",
            keda_args(
                config,
                provider=provider,
                oidc_provider_arn=OIDC_PROVIDER_ARN,
                oidc_issuer=OIDC_ISSUER,
                redis_auth_secret_arn=BACKENDS.redis_auth_secret_arn,
                secrets_kms_key_arn=SECRETS_KEY_ARN,
                vpc_cidr=VPC_CIDR,
                redis_port=BACKENDS.redis_port,
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
        workloads = Workloads(
            "app",
            workloads_args(
                config,
                platform,
                provider=provider,
                images=images.refs,
                role_arns=dict(ROLE_ARNS),
                backends=BACKENDS,
                vpc_cidr=VPC_CIDR,
                keda=keda,
            ),
        )
        if after_workloads is not None:
            after_workloads(provider, platform, workloads)

    return run(program, stack=config.environment)


def pod_spec(captured: Captured, type_token: str, name: str) -> dict[str, Any]:
    return captured.inputs(type_token, name)["spec"]["template"]["spec"]
