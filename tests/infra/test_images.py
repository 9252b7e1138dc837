"""The images under mocks: three builds for linux/amd64 from the repository's Dockerfiles, tagged with
version and commit, pushed to their ECR repositories with a fetched token, cached in the registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.images import (
    CACHE_TAG,
    IMAGE_NAMES,
    Images,
    ImagesArgs,
    current_git_sha,
    dockerfile_path,
    registry_address,
)
from infra.config import REPO_ROOT
from stacks.mocks import is_secret
from tests.infra.harness import Captured, run
from tests.infra.k8s_fixtures import GIT_SHA, IMAGE, REPOSITORY_URLS

REGISTRY = registry_address(REPOSITORY_URLS["api"])


def build(git_sha: str | None) -> tuple[Captured, dict[str, str]]:
    refs: dict[str, str] = {}

    def program() -> None:
        images = Images(
            "images",
            ImagesArgs(
                repository_urls=dict(REPOSITORY_URLS), version="1.4.2", git_sha=git_sha, context=REPO_ROOT
            ),
        )
        for name, ref in images.refs.items():
            ref.apply(lambda value, name=name: refs.__setitem__(name, value))

    captured = run(program)
    return captured, refs


@pytest.fixture(scope="module")
def built() -> tuple[Captured, dict[str, str]]:
    return build(GIT_SHA)


@pytest.mark.parametrize("name", IMAGE_NAMES)
def test_each_image_builds_its_dockerfile_for_amd64(
    built: tuple[Captured, dict[str, str]], name: str
) -> None:
    captured, _ = built
    image = captured.inputs(IMAGE, f"images-{name}")
    assert image["dockerfile"]["location"] == dockerfile_path(name) == f"app/docker/{name}.Dockerfile"
    assert image["context"]["location"] == "."
    assert image["platforms"] == ["linux/amd64"]
    assert image["push"] is True


@pytest.mark.parametrize("name", IMAGE_NAMES)
def test_tags_are_version_and_commit_in_its_repository(
    built: tuple[Captured, dict[str, str]], name: str
) -> None:
    image = built[0].inputs(IMAGE, f"images-{name}")
    assert image["tags"] == [f"{REPOSITORY_URLS[name]}:1.4.2", f"{REPOSITORY_URLS[name]}:{GIT_SHA}"]


@pytest.mark.parametrize("name", IMAGE_NAMES)
def test_push_uses_the_ecr_token_as_a_secret(built: tuple[Captured, dict[str, str]], name: str) -> None:
    captured, _ = built
    raw = captured.one(IMAGE, f"images-{name}").inputs["registries"]
    # Secret-ness propagates to the enclosing list; either way the password never travels in clear.
    assert is_secret(raw) or is_secret(raw[0]["password"]), "the registry password must stay a secret"
    (registry,) = captured.inputs(IMAGE, f"images-{name}")["registries"]
    assert registry["address"] == REGISTRY
    assert registry["username"] == "AWS"


@pytest.mark.parametrize("name", IMAGE_NAMES)
def test_layers_are_cached_in_the_registry(built: tuple[Captured, dict[str, str]], name: str) -> None:
    image = built[0].inputs(IMAGE, f"images-{name}")
    cache_ref = f"{REPOSITORY_URLS[name]}:{CACHE_TAG}"
    assert image["cacheFrom"] == [{"registry": {"ref": cache_ref}}]
    (cache_to,) = image["cacheTo"]
    assert cache_to["registry"]["ref"] == cache_ref and cache_to["registry"]["imageManifest"] is True


def test_refs_pin_the_pushed_digest(built: tuple[Captured, dict[str, str]]) -> None:
    _, refs = built
    for name in IMAGE_NAMES:
        repository, _, digest = refs[name].partition("@sha256:")
        assert repository == REPOSITORY_URLS[name] and len(digest) == 64


def test_without_a_commit_only_the_version_tag() -> None:
    captured, _ = build(None)
    assert captured.inputs(IMAGE, "images-api")["tags"] == [f"{REPOSITORY_URLS['api']}:1.4.2"]


def test_git_sha_prefers_ci_then_git_then_none(tmp_path: Path) -> None:
    assert current_git_sha(REPO_ROOT, {"GITHUB_SHA": GIT_SHA.upper()}) == GIT_SHA
    from_git = current_git_sha(REPO_ROOT, {})
    assert from_git is None or len(from_git) == 40
    assert current_git_sha(REPO_ROOT, {"GITHUB_SHA": "not-a-sha"}) is None
    assert current_git_sha(tmp_path, {}) is None, "outside a checkout there is no commit"
