"""The service's three images, built from the repository's Dockerfiles and pushed to ECR.

Each build gets one tag, ``<version>-<git commit>``, that no other build can carry: the repositories'
tags are immutable, so a tag shared across commits (the version alone) would fail the second deploy.
The version travels as a label. The workloads run each image by the digest the push returned — a tag
can be re-pointed, a digest cannot. Layers are cached in the same repository under ``buildcache`` (the
registry exempts that tag from tag immutability).

Rolling back names an already pushed build (``images.deployBuild``): its digests are looked up in the
registry and nothing is built or pushed, whatever the checkout.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_docker_build as docker_build

from components.workloads.contract import COMPONENTS, Component

# One image per component of the service, built from app/docker/<name>.Dockerfile.
ImageName = Component
IMAGE_NAMES: tuple[ImageName, ...] = COMPONENTS
# EKS nodes are x86_64 (m6i/m6a); building for them explicitly keeps builds on Apple silicon honest.
PLATFORM = docker_build.Platform.LINUX_AMD64
CACHE_TAG = "buildcache"
_SHA = re.compile(r"^[0-9a-f]{40}$")


def current_git_sha(repo: Path, env: Mapping[str, str] | None = None) -> str | None:
    """The commit being deployed: ``GITHUB_SHA`` in CI, else ``git rev-parse HEAD`` in ``repo``, else None.

    None (no git, not a checkout): there is no tag for a build, so ``Images`` refuses to build and
    only an already pushed build (``deploy_build``) can be deployed.
    """
    env = os.environ if env is None else env
    sha = env.get("GITHUB_SHA", "").strip().lower()
    if not sha and (git := shutil.which("git")):
        try:
            result = subprocess.run(  # noqa: S603 - fixed arguments, no shell
                [git, "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10, check=True
            )
            sha = result.stdout.strip().lower()
        except (OSError, subprocess.SubprocessError):
            sha = ""
    return sha if _SHA.fullmatch(sha) else None


def build_tag(version: str, git_sha: str) -> str:
    """``1.4.2-<40 hex>``: one build of one commit (ECR tags may be 128 characters long)."""
    return f"{version}-{git_sha}"


def repository_name(repository_url: str) -> str:
    """``ai-agents-api`` of ``…amazonaws.com/ai-agents-api``."""
    return repository_url.split("/", 1)[1]


def registry_address(repository_url: str) -> str:
    """``123456789012.dkr.ecr.eu-west-1.amazonaws.com`` of ``…amazonaws.com/ai-agents-api``."""
    return repository_url.split("/", 1)[0]


def dockerfile_path(image: str) -> str:
    return f"app/docker/{image}.Dockerfile"


@dataclass(frozen=True)
class ImagesArgs:
    # ECR repository URLs keyed by image name, one per IMAGE_NAMES (from the Registry component).
    repository_urls: Mapping[str, pulumi.Input[str]]
    version: str
    git_sha: str | None
    # The build context: the repository root (the Dockerfiles copy pyproject.toml and app/).
    context: Path
    # An already pushed build tag to deploy instead of building (the rollback path); None builds.
    deploy_build: str | None = None


class Images(pulumi.ComponentResource):
    """api, worker and migrations images for linux/amd64, pushed to ECR, exposed by digest."""

    digests: dict[str, pulumi.Output[str]]
    refs: dict[str, pulumi.Output[str]]
    # The tag every image of this deployment carries: the build to name when rolling back to it.
    tag: str

    def __init__(self, name: str, args: ImagesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ai-agents:images:Images", name, None, opts)
        if missing := set(IMAGE_NAMES) - set(args.repository_urls):
            raise ValueError(f"no ECR repository for image(s) {sorted(missing)}")
        self._name = name
        self.digests = {}
        self.refs = {}
        if args.deploy_build is not None:
            self.tag = args.deploy_build
            self._pushed(args.repository_urls, args.deploy_build)
        elif args.git_sha is None:
            raise ValueError(
                "no git commit (GITHUB_SHA unset, git rev-parse failed): a build needs one for its tag; "
                "deploy an already pushed build with images.deployBuild instead"
            )
        else:
            self.tag = build_tag(args.version, args.git_sha)
            self._build(args, args.git_sha)
        self.register_outputs({"digests": self.digests, "refs": self.refs, "tag": self.tag})

    def _pushed(self, repository_urls: Mapping[str, pulumi.Input[str]], tag: str) -> None:
        """The digests an earlier deployment pushed under ``tag``; no build, no push."""
        for image in IMAGE_NAMES:
            url = pulumi.Output.from_input(repository_urls[image])
            found = aws.ecr.get_image_output(
                repository_name=url.apply(repository_name),
                image_tag=tag,
                opts=pulumi.InvokeOutputOptions(parent=self),
            )
            self.digests[image] = found.image_digest
            self.refs[image] = pulumi.Output.all(url, found.image_digest).apply(lambda v: f"{v[0]}@{v[1]}")

    def _build(self, args: ImagesArgs, git_sha: str) -> None:
        # docker-build deletes an Image's pushed tags when the resource goes (a rollback declares none):
        # a release stays in the registry until the repository's lifecycle policy expires it.
        child = pulumi.ResourceOptions(parent=self, retain_on_delete=True)
        name = self._name
        # A relative context keeps the plan identical on every machine (the program runs from the root).
        context = os.path.relpath(args.context)
        for image in IMAGE_NAMES:
            url = pulumi.Output.from_input(args.repository_urls[image])
            # A short-lived (12 h) token, fetched at deployment time; never stored in config.
            token = aws.ecr.get_authorization_token_output(
                registry_id=url.apply(lambda u: registry_address(u).split(".", 1)[0]),
                opts=pulumi.InvokeOutputOptions(parent=self),
            )
            cache = url.apply(lambda u: f"{u}:{CACHE_TAG}")
            built = docker_build.Image(
                f"{name}-{image}",
                context=docker_build.BuildContextArgs(location=context),
                dockerfile=docker_build.DockerfileArgs(location=str(Path(context) / dockerfile_path(image))),
                platforms=[PLATFORM],
                tags=url.apply(lambda u: [f"{u}:{self.tag}"]),
                labels={
                    "org.opencontainers.image.version": args.version,
                    "org.opencontainers.image.revision": git_sha,
                    "org.opencontainers.image.title": f"ai-agents-{image}",
                },
                push=True,
                # Pull requests preview without Docker or registry access; the digest is known on `up`.
                build_on_preview=False,
                registries=[
                    docker_build.RegistryArgs(
                        address=url.apply(registry_address),
                        username=token.user_name,
                        password=pulumi.Output.secret(token.password),
                    )
                ],
                cache_from=[
                    docker_build.CacheFromArgs(registry=docker_build.CacheFromRegistryArgs(ref=cache))
                ],
                cache_to=[
                    docker_build.CacheToArgs(
                        registry=docker_build.CacheToRegistryArgs(
                            ref=cache,
                            mode=docker_build.CacheMode.MAX,
                            # ECR accepts the cache only as an OCI image manifest.
                            image_manifest=True,
                            oci_media_types=True,
                            # A cache that cannot be written must not fail a release.
                            ignore_error=True,
                        )
                    )
                ],
                opts=child,
            )
            self.digests[image] = built.digest
            self.refs[image] = pulumi.Output.all(url, built.digest).apply(lambda v: f"{v[0]}@{v[1]}")
