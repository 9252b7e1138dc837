"""Typed config of the bootstrap project: one key, ``ai-agents-bootstrap:settings``, validated before any
resource is declared (camelCase keys, unknown keys rejected, as the platform's stack files)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, cast

import yaml
from pydantic import AfterValidator, Field, ValidationError, field_validator, model_validator

from components.settings import Name, RuleViolation, Section

PROJECT = "ai-agents-bootstrap"
KEY = "settings"
BOOTSTRAP_ROOT = Path(__file__).resolve().parent
StackName = Literal["staging", "production"]
# The stack whose environment also accepts release tags and needs a reviewer.
PRODUCTION: StackName = "production"
ADMINISTRATOR_ACCESS = "arn:aws:iam::aws:policy/AdministratorAccess"
READ_ONLY_ACCESS = "arn:aws:iam::aws:policy/ReadOnlyAccess"


class BootstrapConfigError(Exception):
    """One line: ``FILE: ai-agents-bootstrap:settings.key: rule``."""


def _role_arn(value: str) -> str:

    if not re.fullmatch(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}", value):
        raise ValueError(f"{value!r} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)")
    return value


def _policy_arn(value: str) -> str:

    if not re.fullmatch(r"arn:aws[a-z-]*:iam::(aws|\d{12}):policy/[\w+=,.@/-]{1,512}", value):
        raise ValueError(f"{value!r} is not an IAM policy ARN")
    return value


RoleArn = Annotated[str, AfterValidator(_role_arn)]
PolicyArn = Annotated[str, AfterValidator(_policy_arn)]


class Reviewers(Section):
    users: list[int] = Field(default_factory=list[int], max_length=6)
    """GitHub user ids who may approve a production deployment (`gh api users/<login> --jq .id`)."""
    teams: list[int] = Field(default_factory=list[int], max_length=6)
    """GitHub team ids who may approve a production deployment (`gh api orgs/<org>/teams/<slug> --jq .id`)."""


class GithubSettings(Section):
    owner: str = Field(pattern=r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,37}[A-Za-z0-9])?$")
    """Owner of the repository, spelt exactly as GitHub does: the OIDC subject compares it case-sensitively."""
    repository: str = Field(pattern=r"^[A-Za-z0-9._-]{1,100}$")
    """Repository name, spelt exactly as GitHub does."""
    default_branch: str = Field(default="main", pattern=r"^[A-Za-z0-9._/-]{1,100}$")
    """The only branch the deploy and drift environments accept."""
    release_tag_pattern: str = Field(default="v*", pattern=r"^[A-Za-z0-9._*/-]{1,100}$")
    """Tags the production environment also accepts (releases)."""
    manage_settings: bool = True
    """Create the environments, their rules and variables, and the release-tag ruleset with the GitHub
    provider (token with admin rights on the repository in `GITHUB_TOKEN`); false: by hand (runbook)."""
    production_reviewers: Reviewers = Reviewers()
    """Who approves production deployments; at least one user or team."""
    release_tag_bypass_role_id: int = 5
    """Repository role (ruleset actor id; 5 is the base `admin` role) that alone may create, move or
    delete release tags."""

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.repository}"

    @model_validator(mode="after")
    def _reviewers_required(self) -> GithubSettings:
        if not (self.production_reviewers.users or self.production_reviewers.teams):
            raise RuleViolation("github.productionReviewers", "needs at least one user or team")
        return self


class RunnerSettings(Section):
    vpc_id: str = Field(pattern=r"^vpc-[0-9a-f]{8,17}$")
    """The stack's VPC (the platform stack's `vpcId` output, once its network exists)."""
    subnet_ids: list[str] = Field(min_length=1)
    """The stack's private subnets (`privateSubnetIds` output): the runner reaches the cluster from there."""
    compute_type: Literal["BUILD_GENERAL1_SMALL", "BUILD_GENERAL1_MEDIUM", "BUILD_GENERAL1_LARGE"] = (
        "BUILD_GENERAL1_MEDIUM"
    )
    """CodeBuild compute of each runner (MEDIUM: 4 vCPU, 7 GiB; the offline plan and image builds fit)."""

    @field_validator("subnet_ids")
    @classmethod
    def _subnets(cls, values: list[str]) -> list[str]:
        for subnet in values:
            if not re.fullmatch(r"subnet-[0-9a-f]{8,17}", subnet):
                raise ValueError(f"{subnet!r} is not a subnet id")
        return values


class BootstrapConfig(Section):
    account_id: str = Field(pattern=r"^\d{12}$")
    """The AWS account this stack bootstraps; the program stops if its credentials are another's."""
    region: str = Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
    """AWS region of the state bucket and the secrets keys (IAM is global)."""
    prefix: Name = "ai-agents"
    """Start of every name this project creates (roles, keys, bucket)."""
    stacks: list[StackName] = Field(default_factory=lambda: ["staging", "production"], min_length=1)
    """The platform's stacks deployed from this account: one deploy role, drift role and key each."""
    key_administrator_arns: list[RoleArn] = Field(min_length=1)
    """Roles that administer the secrets keys (never use them). Run the bootstrap as one of them: KMS
    refuses a key policy that would lock its creator out."""
    break_glass_role_arns: list[RoleArn] = Field(default_factory=list[RoleArn])
    """Roles that may also use every stack's key and write every stack's state: `pulumi stack init`
    and deploys by hand. Empty: only CI's roles can."""
    deploy_policy_arns: list[PolicyArn] = Field(default_factory=lambda: [ADMINISTRATOR_ACCESS], min_length=1)
    """Managed policies of the deploy roles (the program creates IAM roles, VPCs, EKS, RDS…)."""
    read_only_policy_arn: PolicyArn = READ_ONLY_ACCESS
    """Managed policy of the preview and drift roles."""
    github: GithubSettings
    """The repository whose workflows assume the roles."""
    codebuild_connection_arn: str | None = Field(
        default=None,
        pattern=r"^arn:aws[a-z-]*:(codeconnections|codestar-connections):[a-z0-9-]+:\d{12}:connection/[\w-]+$",
    )
    """The account's CodeConnections connection to GitHub (created and authorised once in the console);
    the CI runners' projects and webhooks use it. Required when `runners` is set."""
    runners: dict[StackName, RunnerSettings] = Field(default_factory=dict[StackName, RunnerSettings])
    """Per stack, a CodeBuild-hosted GitHub Actions runner in the stack's private subnets (the jobs that
    reach the cluster run there). Empty until the stack's network exists (runbook, "First deploy of a new
    account")."""

    @model_validator(mode="after")
    def _unique(self) -> BootstrapConfig:
        if len(set(self.stacks)) != len(self.stacks):
            raise RuleViolation("stacks", "lists a stack twice")
        if self.runners and not self.codebuild_connection_arn:
            raise RuleViolation("codebuildConnectionArn", "is required when runners are set")
        unknown = sorted(set(self.runners) - set(self.stacks))
        if unknown:
            raise RuleViolation("runners", f"{unknown} are not in stacks")
        overlap = set(self.key_administrator_arns) & set(self.break_glass_role_arns)
        if overlap:
            raise RuleViolation(
                "breakGlassRoleArns", f"{sorted(overlap)} also administer the keys; keep the duties apart"
            )
        return self


def parse(values: Mapping[str, Any], source: str) -> BootstrapConfig:
    """Validate ``{"ai-agents-bootstrap:settings": {...}}``; BootstrapConfigError names the first bad key."""
    raw = values.get(f"{PROJECT}:{KEY}")
    if isinstance(raw, str):
        raw = json.loads(raw)  # how the engine hands structured config to a program
    unknown = sorted(k for k in values if k.startswith(f"{PROJECT}:") and k != f"{PROJECT}:{KEY}")
    if unknown:
        raise BootstrapConfigError(f"{source}: {unknown[0]}: unknown key (everything is under {KEY})")
    if raw is None:
        raise BootstrapConfigError(f"{source}: {PROJECT}:{KEY}: is required")
    try:
        return BootstrapConfig.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        context: Mapping[str, Any] = error.get("ctx") or {}
        violation = context.get("error")
        if isinstance(violation, RuleViolation):
            key, rule = violation.key, violation.rule
        else:
            key = ".".join(str(part) for part in error["loc"])
            rule = "unknown key" if error["type"] == "extra_forbidden" else str(error["msg"])
        raise BootstrapConfigError(f"{source}: {PROJECT}:{KEY}.{key}: {rule}") from None


def stack_file(stack: str) -> Path:
    return BOOTSTRAP_ROOT / f"Pulumi.{stack}.yaml"


def read_stack_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise BootstrapConfigError(f"{path.name}: no such stack file")
    document: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(document, dict) or not isinstance(cast(dict[str, Any], document).get("config"), dict):
        raise BootstrapConfigError(f"{path.name}: must be a mapping with a 'config:' mapping")
    return cast(dict[str, Any], cast(dict[str, Any], document)["config"])


def load_from_pulumi() -> BootstrapConfig:
    """The running stack's config, through Pulumi (the engine and the offline plan alike)."""
    import pulumi
    from pulumi.runtime.config import CONFIG, get_config_env

    present = {**dict(CONFIG.get()), **get_config_env()}
    values: dict[str, Any] = {key: value for key, value in present.items() if key.startswith(f"{PROJECT}:")}
    return parse(values, f"Pulumi.{pulumi.get_stack()}.yaml")
