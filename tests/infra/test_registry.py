"""ECR under the whole program: one repository per image, immutable, scanned, KMS, pruned."""

from __future__ import annotations

import fnmatch
import json
from typing import Any

import pytest

from components.registry import BUILD_CACHE_TAG, IMAGES, lifecycle_policy
from components.registry_settings import RegistrySettings
from infra.config import StackConfig, load_stack_file
from tests.infra.harness import Captured, run_stack

REPOSITORY = "aws:ecr/repository:Repository"


@pytest.fixture(scope="module", params=["staging", "production"])
def stack(request: pytest.FixtureRequest) -> tuple[StackConfig, Captured]:
    return load_stack_file(request.param), run_stack(request.param)


def tags_are_immutable(repository: dict[str, Any]) -> None:
    """Only the build cache tag may move; every release tag is written once."""
    assert repository["imageTagMutability"] in ("IMMUTABLE", "IMMUTABLE_WITH_EXCLUSION")
    filters = repository.get("imageTagMutabilityExclusionFilters") or []
    assert [f["filter"] for f in filters] in ([], [BUILD_CACHE_TAG])


def test_one_hardened_repository_per_image(stack: tuple[StackConfig, Captured]) -> None:
    config, captured = stack
    key = captured.outputs("aws:kms/key:Key", f"ai-agents-{config.environment}-ecr")["arn"]
    repositories = captured.of_type(REPOSITORY)
    assert sorted(r.inputs["name"].rsplit("/", 1)[-1] for r in repositories) == sorted(IMAGES)
    for repository in repositories:
        tags_are_immutable(repository.inputs)
        assert repository.inputs["imageScanningConfiguration"] == {"scanOnPush": True}
        assert repository.inputs["encryptionConfigurations"] == [{"encryptionType": "KMS", "kmsKey": key}]
        assert repository.inputs["forceDelete"] is config.registry.force_delete


def test_force_delete_only_in_staging() -> None:
    assert load_stack_file("staging").registry.force_delete is True
    assert load_stack_file("production").registry.force_delete is False


def test_every_repository_has_the_configured_lifecycle(stack: tuple[StackConfig, Captured]) -> None:
    config, captured = stack
    policies = captured.of_type("aws:ecr/lifecyclePolicy:LifecyclePolicy")
    repositories = {r.outputs["name"] for r in captured.of_type(REPOSITORY)}
    assert {p.inputs["repository"] for p in policies} == repositories
    rules = json.loads(policies[0].inputs["policy"])["rules"]
    assert rules[0]["selection"]["tagStatus"] == "untagged"
    assert rules[0]["selection"]["countNumber"] == config.registry.untagged_expiry_days
    assert rules[1]["selection"]["countNumber"] == config.registry.keep_tagged_images


def test_images_are_pushed_to_these_repositories(stack: tuple[StackConfig, Captured]) -> None:
    _, captured = stack
    urls = {r.outputs["repositoryUrl"] for r in captured.of_type(REPOSITORY)}
    for image in captured.of_type("docker-build:index:Image"):
        assert {tag.split(":", 1)[0] for tag in image.inputs["tags"]} <= urls


def test_the_immutability_check_catches_a_mutable_repository() -> None:
    """Mutation: a MUTABLE repository, or an exclusion beyond the build cache, must fail the check."""
    with pytest.raises(AssertionError):
        tags_are_immutable({"imageTagMutability": "MUTABLE"})
    with pytest.raises(AssertionError):
        tags_are_immutable(
            {
                "imageTagMutability": "IMMUTABLE_WITH_EXCLUSION",
                "imageTagMutabilityExclusionFilters": [{"filter": "*"}],
            }
        )


def test_lifecycle_numbers_follow_settings() -> None:
    rules = json.loads(lifecycle_policy(RegistrySettings(keep_tagged_images=5, untagged_expiry_days=2)))[
        "rules"
    ]
    assert [r["selection"]["countNumber"] for r in rules] == [2, 5]


def test_enhanced_scanning_covers_every_repository(stack: tuple[StackConfig, Captured]) -> None:
    """Continuous Inspector scans of this stack's repositories: what the deploy's scan gate reads."""
    config, captured = stack
    (scanning,) = captured.of_type("aws:ecr/registryScanningConfiguration:RegistryScanningConfiguration")
    assert scanning.inputs["scanType"] == "ENHANCED"
    (rule,) = scanning.inputs["rules"]
    assert rule["scanFrequency"] == "CONTINUOUS_SCAN"
    (only,) = rule["repositoryFilters"]
    assert only["filterType"] == "WILDCARD"
    for repository in captured.of_type(REPOSITORY):
        assert fnmatch.fnmatchcase(repository.inputs["name"], only["filter"])
    assert config.registry.scan_block_severity == "HIGH", "production's bar: CRITICAL and HIGH stop a deploy"
