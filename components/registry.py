"""ECR repositories for the three images: immutable tags, scanned on push, KMS-encrypted, pruned."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.registry_settings import RegistrySettings

IMAGES = ("api", "worker", "migrations")
# The build cache is a moving tag by nature; every other tag is immutable.
BUILD_CACHE_TAG = "buildcache"


def lifecycle_policy(settings: RegistrySettings) -> str:
    """Expire untagged images after N days; keep the newest N tagged images (the build cache aside)."""
    return json.dumps(
        {
            "rules": [
                {
                    "rulePriority": 1,
                    "description": f"expire untagged images after {settings.untagged_expiry_days} days",
                    "selection": {
                        "tagStatus": "untagged",
                        "countType": "sinceImagePushed",
                        "countUnit": "days",
                        "countNumber": settings.untagged_expiry_days,
                    },
                    "action": {"type": "expire"},
                },
                {
                    "rulePriority": 2,
                    "description": f"keep the newest {settings.keep_tagged_images} tagged images",
                    "selection": {
                        "tagStatus": "tagged",
                        "tagPatternList": ["*"],
                        "countType": "imageCountMoreThan",
                        "countNumber": settings.keep_tagged_images,
                    },
                    "action": {"type": "expire"},
                },
            ]
        }
    )


@dataclass(frozen=True)
class RegistryArgs:
    settings: RegistrySettings
    kms_key_arn: pulumi.Input[str]
    # Production: the engine refuses to delete or replace what holds state (`protect`).
    protect: bool = False


class Registry(pulumi.ComponentResource):
    """One repository per image."""

    repository_urls: dict[str, pulumi.Output[str]]
    repository_arns: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: RegistryArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ai-agents:registry:Registry", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.repository_urls = {}
        self.repository_arns = {}
        for image in IMAGES:
            repository = aws.ecr.Repository(
                f"{name}-{image}",
                name=f"{name}/{image}",
                image_tag_mutability="IMMUTABLE_WITH_EXCLUSION",
                image_tag_mutability_exclusion_filters=[
                    aws.ecr.RepositoryImageTagMutabilityExclusionFilterArgs(
                        filter=BUILD_CACHE_TAG, filter_type="WILDCARD"
                    )
                ],
                image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(
                    scan_on_push=True
                ),
                encryption_configurations=[
                    aws.ecr.RepositoryEncryptionConfigurationArgs(
                        encryption_type="KMS", kms_key=args.kms_key_arn
                    )
                ],
                force_delete=args.settings.force_delete,
                opts=child.merge(pulumi.ResourceOptions(protect=args.protect)),
            )
            aws.ecr.LifecyclePolicy(
                f"{name}-{image}",
                repository=repository.name,
                policy=lifecycle_policy(args.settings),
                opts=child,
            )
            self.repository_urls[image] = repository.repository_url
            self.repository_arns[image] = repository.arn
        # Enhanced scanning (Amazon Inspector): CVEs of the OS and language packages, re-checked as new ones
        # are published, which the deploy's scan gate (python -m stacks scan-gate) reads per digest. The
        # configuration is one per account and region: stacks sharing an account must share this resource.
        aws.ecr.RegistryScanningConfiguration(
            f"{name}-scanning",
            scan_type="ENHANCED",
            rules=[
                aws.ecr.RegistryScanningConfigurationRuleArgs(
                    scan_frequency="CONTINUOUS_SCAN",
                    repository_filters=[
                        aws.ecr.RegistryScanningConfigurationRuleRepositoryFilterArgs(
                            filter=f"{name}/*", filter_type="WILDCARD"
                        )
                    ],
                )
            ],
            opts=child,
        )
        self.register_outputs({f"{image}_repository_url": url for image, url in self.repository_urls.items()})
