"""The service's three images, built from the repository's Dockerfiles and pushed to ECR.

Each image is tagged with the release version and the git commit, and the workloads run it by the
digest the push returned — a tag can be re-pointed, a digest cannot. Layers are cached in the same
repository under ``buildcache`` (the registry must exempt that tag from tag immutability).
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

    None (no git, not a checkout) means the images are tagged with the version only; the caller warns.
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


def image_tags(repository_url: str, version: str, git_sha: str | None) -> list[str]:
    tags = [f"{repository_url}:{version}"]
    if git_sha:
        tags.append(f"{repository_url}:{git_sha}")
    return tags


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


class Images(pulumi.ComponentResource):
    """api, worker and migrations images for linux/amd64, pushed to ECR, exposed by digest."""

    digests: dict[str, pulumi.Output[str]]
    refs: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: ImagesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ai-agents:images:Images", name, None, opts)
        if missing := set(IMAGE_NAMES) - set(args.repository_urls):
            raise ValueError(f"no ECR repository for image(s) {sorted(missing)}")
        if args.git_sha is None:
            pulumi.log.warn(
                "no git commit found (GITHUB_SHA unset, git rev-parse failed): images are tagged "
                f"with the version {args.version!r} only",
                resource=self,
            )
        child = pulumi.ResourceOptions(parent=self)
        # A relative context keeps the plan identical on every machine (the program runs from the root).
        context = os.path.relpath(args.context)
        self.digests = {}
        self.refs = {}
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
                tags=url.apply(lambda u: image_tags(u, args.version, args.git_sha)),
                labels={
                    "org.opencontainers.image.version": args.version,
                    "org.opencontainers.image.revision": args.git_sha or "unknown",
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
        self.register_outputs({"digests": self.digests, "refs": self.refs})
