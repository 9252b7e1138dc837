"""Stack-level policies: every Deployment has a PodDisruptionBudget, every image comes from this stack's
ECR, and in production every resource holding state is protected. (The data-tier security-group policy
lives in network.py.)"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from policy.core import StackResource, as_dict, by_type, get, stack_policy
from policy.ecr import REPOSITORY, repository_names
from policy.settings import PolicySettings
from policy.workloads import WORKLOADS, containers, pod_spec

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
# The resources whose loss loses data or identity: the cluster (and everything it runs), the database,
# the broker, the keys everything is encrypted with, the image repositories and the secrets.
STATEFUL = (
    "eks:index:Cluster",
    "aws:rds/instance:Instance",
    "aws:elasticache/replicationGroup:ReplicationGroup",
    "aws:kms/key:Key",
    "aws:ecr/repository:Repository",
    "aws:secretsmanager/secret:Secret",
)
# Of those, the ones with a deletion-protection switch of their own (the API refuses to delete them
# whoever asks), by the property that sets it. RDS's has its own policy (rds-deletion-protection).
DELETION_PROTECTION = {"eks:index:Cluster": "deletionProtection"}
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
ECR_HOST = re.compile(r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/(?P<repo>[^:@]+)")


def _namespace(props: Mapping[str, Any]) -> str:
    return str(get(props, "metadata.namespace") or "default")


def _deployments_have_pdb(
    resources: Sequence[StackResource], _settings: PolicySettings
) -> Iterator[tuple[str, str | None]]:
    budgets = [
        (_namespace(p.props), as_dict(get(p.props, "spec.selector.matchLabels")))
        for p in by_type(resources, PDB)
    ]
    for deployment in by_type(resources, DEPLOYMENT):
        namespace = _namespace(deployment.props)
        labels = as_dict(get(deployment.props, "spec.template.metadata.labels"))
        covered = any(
            ns == namespace and selector and all(labels.get(k) == v for k, v in selector.items())
            for ns, selector in budgets
        )
        if not covered:
            yield (
                f"Deployment {namespace}/{deployment.name} has no PodDisruptionBudget selecting its pods.",
                deployment.urn,
            )


def _repository_pattern(resources: Sequence[StackResource]) -> re.Pattern[str] | None:
    names = sorted({n for repo in by_type(resources, REPOSITORY) for n in repository_names(repo)})
    if not names:
        return None
    # Auto-named repositories get Pulumi's "-<7 hex>" suffix.
    return re.compile(rf"^({'|'.join(re.escape(n) for n in names)})(-[0-9a-f]{{7}})?$")


def image_from_stack(image: str, repositories: re.Pattern[str] | None, extra: Sequence[str]) -> bool:
    if any(image.startswith(prefix) for prefix in extra):
        return True
    match = ECR_HOST.match(image)
    return bool(match and repositories and repositories.match(match.group("repo")))


def _images_from_stack_ecr(
    resources: Sequence[StackResource], settings: PolicySettings
) -> Iterator[tuple[str, str | None]]:
    repositories = _repository_pattern(resources)
    for workload in by_type(resources, *WORKLOADS):
        for container in containers(pod_spec(workload.type, workload.props)):
            image = str(container.get("image") or "")
            if not image_from_stack(image, repositories, settings.extra_image_registries):
                yield (
                    f"{workload.name}: image {image or '(none)'} does not come from this stack's ECR.",
                    workload.urn,
                )


def _stateful_resources_protected(
    resources: Sequence[StackResource], settings: PolicySettings
) -> Iterator[tuple[str, str | None]]:
    if not settings.production:
        return
    for resource in by_type(resources, *STATEFUL):
        if not resource.protect:
            yield f"{resource.type} {resource.name} is not protected in production.", resource.urn
        switch = DELETION_PROTECTION.get(resource.type)
        if switch and resource.props.get(switch) is not True:
            yield f"{resource.type} {resource.name} has no deletion protection ({switch}).", resource.urn


POLICIES = [
    stack_policy(
        "k8s-deployment-has-pdb",
        severity="low",
        controls=("SOC2 A1.2",),
        description="A Deployment without a PodDisruptionBudget can lose all its pods at once during node drains and upgrades.",
        remediation="declare a policy/v1 PodDisruptionBudget in the same namespace whose selector.matchLabels match the pod template (minAvailable or maxUnavailable).",
        check=_deployments_have_pdb,
    ),
    stack_policy(
        "images-from-stack-ecr",
        severity="high",
        controls=(
            "CIS-EKS 5.1.4",
            "SOC2 CC6.8",
        ),
        description="Images from anywhere but this stack's ECR have not gone through our build, scan and signing path.",
        remediation="push the image to the stack's ECR repository and reference it as <account>.dkr.ecr.<region>.amazonaws.com/<repo>@sha256:<digest> (or list a vetted registry in extraImageRegistries).",
        check=_images_from_stack_ecr,
    ),
    stack_policy(
        "production-stateful-protected",
        severity="high",
        controls=("SOC2 A1.2",),
        description="In production, a stateful resource (cluster, database, broker, KMS key, image repository, secret) that is not protected can be deleted or replaced by one mistaken change or `pulumi destroy`.",
        remediation="set Pulumi's protect option on it (the components do so in production) and, for the EKS cluster, deletionProtection=true; unprotect deliberately (`pulumi state unprotect`) before a planned removal.",
        check=_stateful_resources_protected,
    ),
]
