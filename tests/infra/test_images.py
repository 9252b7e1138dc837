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
    build_tag,
    current_git_sha,
    dockerfile_path,
    registry_address,
)
from infra.config import REPO_ROOT
from stacks.mocks import is_secret
from tests.infra.harness import Captured, run
from tests.infra.k8s_fixtures import GIT_SHA, IMAGE, REPOSITORY_URLS

REGISTRY = registry_address(REPOSITORY_URLS["api"])


OTHER_SHA = "fedcba9876543210fedcba9876543210fedcba98"


def build(git_sha: str | None, deploy_build: str | None = None) -> tuple[Captured, dict[str, str]]:
    refs: dict[str, str] = {}

    def program() -> None:
        images = Images(
            "images",
            ImagesArgs(
                repository_urls=dict(REPOSITORY_URLS),
                version="1.4.2",
                git_sha=git_sha,
                context=REPO_ROOT,
                deploy_build=deploy_build,
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
def test_one_tag_per_build_with_the_version_as_a_label(
    built: tuple[Captured, dict[str, str]], name: str
) -> None:
    """The repositories' tags are immutable: a tag shared by two builds (the version alone) fails the
    second deploy with ImageTagAlreadyExistsException. `<version>-<commit>` names exactly one build."""
    image = built[0].inputs(IMAGE, f"images-{name}")
    assert image["tags"] == [f"{REPOSITORY_URLS[name]}:{build_tag('1.4.2', GIT_SHA)}"]
    assert build_tag("1.4.2", GIT_SHA) == f"1.4.2-{GIT_SHA}"
    assert image["labels"]["org.opencontainers.image.version"] == "1.4.2"
    assert image["labels"]["org.opencontainers.image.revision"] == GIT_SHA


def test_two_commits_of_one_version_share_no_tag(built: tuple[Captured, dict[str, str]]) -> None:
    later, _ = build(OTHER_SHA)
    for name in IMAGE_NAMES:
        first = set(built[0].inputs(IMAGE, f"images-{name}")["tags"])
        second = set(later.inputs(IMAGE, f"images-{name}")["tags"])
        assert first and second and not first & second, (first, second)


@pytest.mark.parametrize("name", IMAGE_NAMES)
def test_pushed_releases_outlive_their_image_resource(
    built: tuple[Captured, dict[str, str]], name: str
) -> None:
    """docker-build deletes the pushed tags when its Image resource is deleted: a rollback (which declares
    no build) or a renamed resource would erase the release being rolled back from. Expiry is the
    registry's lifecycle policy's job."""
    assert built[0].one(IMAGE, f"images-{name}").retain_on_delete is True


def test_a_deploy_build_redeploys_the_pushed_digests_without_building(
    built: tuple[Captured, dict[str, str]],
) -> None:
    """The rollback path: naming an already pushed build looks its digests up in the registry and builds
    nothing, so nothing is pushed again (whatever the checkout)."""
    _, pushed = built
    captured, refs = build(OTHER_SHA, deploy_build=build_tag("1.4.2", GIT_SHA))
    assert captured.of_type(IMAGE) == []
    assert refs == pushed


def test_without_a_commit_there_is_no_build_to_name() -> None:
    with pytest.raises(ValueError, match="deployBuild"):
        build(None)


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


def test_git_sha_prefers_ci_then_git_then_none(tmp_path: Path) -> None:
    assert current_git_sha(REPO_ROOT, {"GITHUB_SHA": GIT_SHA.upper()}) == GIT_SHA
    from_git = current_git_sha(REPO_ROOT, {})
    assert from_git is None or len(from_git) == 40
    assert current_git_sha(REPO_ROOT, {"GITHUB_SHA": "not-a-sha"}) is None
    assert current_git_sha(tmp_path, {}) is None, "outside a checkout there is no commit"
