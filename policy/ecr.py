"""ECR: immutable, scanned, KMS-encrypted repositories with a lifecycle policy."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from policy.core import (
    Resource,
    StackResource,
    by_type,
    dicts,
    get,
    is_true,
    present,
    resource_policy,
    stack_policy,
)
from policy.settings import PolicySettings

REPOSITORY = "aws:ecr/repository:Repository"
LIFECYCLE_POLICY = "aws:ecr/lifecyclePolicy:LifecyclePolicy"


def _immutable(r: Resource) -> Iterator[str]:
    mutability = str(r.props.get("imageTagMutability") or "MUTABLE")
    if not mutability.startswith("IMMUTABLE"):
        yield f"ECR repository {r.name} has imageTagMutability={mutability}: a pushed tag can be overwritten."


def _scan_on_push(r: Resource) -> Iterator[str]:
    if not is_true(get(r.props, "imageScanningConfiguration.scanOnPush")):
        yield f"ECR repository {r.name} does not scan images on push."


def _kms(r: Resource) -> Iterator[str]:
    configs = dicts(r.props.get("encryptionConfigurations"))
    if not any(c.get("encryptionType") == "KMS" and present(c.get("kmsKey")) for c in configs):
        yield f"ECR repository {r.name} is not encrypted with a customer-managed KMS key."


def repository_names(repository: StackResource) -> set[str]:
    """The names a repository can be referred to by: its physical name input and its logical name."""
    return {str(n) for n in (repository.props.get("name"), repository.name) if n}


def _lifecycle(
    resources: Sequence[StackResource], _settings: PolicySettings
) -> Iterator[tuple[str, str | None]]:
    policies = by_type(resources, LIFECYCLE_POLICY)
    covered_urns = {dep for p in policies for dep in p.dependencies}
    covered_names = {str(p.props.get("repository")) for p in policies}
    for repo in by_type(resources, REPOSITORY):
        if repo.urn not in covered_urns and not repository_names(repo) & covered_names:
            yield (
                f"ECR repository {repo.name} has no lifecycle policy: untagged and old images pile up forever.",
                repo.urn,
            )


POLICIES = [
    resource_policy(
        "ecr-immutable-tags",
        severity="medium",
        controls=("SOC2 CC8.1",),
        types=[REPOSITORY],
        description="Mutable tags let anyone with push rights swap the image behind a deployed tag.",
        remediation="set imageTagMutability='IMMUTABLE' and deploy images by digest.",
        check=_immutable,
    ),
    resource_policy(
        "ecr-scan-on-push",
        severity="high",
        controls=(
            "CIS-EKS 5.1.1",
            "PCI-DSS 6.3.1",
            "SOC2 CC7.1",
        ),
        types=[REPOSITORY],
        description="Images that are never scanned ship known CVEs unnoticed.",
        remediation="set imageScanningConfiguration={'scanOnPush': True}.",
        check=_scan_on_push,
    ),
    resource_policy(
        "ecr-kms-encryption",
        severity="medium",
        controls=("SOC2 CC6.1",),
        types=[REPOSITORY],
        description="Images must be encrypted with a key we control and audit, not the default AES256 key.",
        remediation="set encryptionConfigurations=[{'encryptionType': 'KMS', 'kmsKey': <the stack's ECR KMS key ARN>}].",
        check=_kms,
    ),
    stack_policy(
        "ecr-lifecycle-policy",
        severity="low",
        controls=(),
        description="Every repository needs a lifecycle policy so untagged and stale images expire.",
        remediation="declare an aws.ecr.LifecyclePolicy for the repository (expire untagged images, keep the last N tagged).",
        check=_lifecycle,
    ),
]
