"""The GitHub side of the trust: environments whose deployment-branch rules the roles' subjects rely on.

A role trusting ``repo:<owner>/<repo>:environment:production`` is only as strict as what may run in
that environment, so every environment a role names admits only the default branch (production also
release tags, and needs a reviewer), and release tags can only be made by the repository's admins.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_github as github

from bootstrap.config import PRODUCTION, BootstrapConfig
from bootstrap.policies import drift_environment


@dataclass(frozen=True)
class EnvironmentRule:
    """One environment: the only refs that may deploy to it, and whether a reviewer must approve."""

    name: str
    branches: tuple[str, ...]
    tags: tuple[str, ...] = ()
    reviewers: bool = False


def environment_rules(config: BootstrapConfig) -> list[EnvironmentRule]:
    branch = (config.github.default_branch,)
    rules: list[EnvironmentRule] = []
    for stack in config.stacks:
        production = stack == PRODUCTION
        tags = (config.github.release_tag_pattern,) if production else ()
        rules.append(EnvironmentRule(stack, branch, tags, reviewers=production))
        rules.append(EnvironmentRule(drift_environment(stack), branch))
    return rules


@dataclass(frozen=True)
class GithubSettingsArgs:
    repository: str  # the name, without the owner (the provider is the owner's)
    rules: Sequence[EnvironmentRule]
    reviewer_users: Sequence[int]
    reviewer_teams: Sequence[int]
    release_tag_pattern: str
    release_tag_bypass_role_id: int
    # Variables per environment name, and for the whole repository (role ARNs, region, backend URL).
    environment_variables: Mapping[str, Mapping[str, pulumi.Input[str]]] = field(
        default_factory=dict[str, Mapping[str, pulumi.Input[str]]]
    )
    repository_variables: Mapping[str, pulumi.Input[str]] = field(
        default_factory=dict[str, pulumi.Input[str]]
    )


class GithubSettings(pulumi.ComponentResource):
    """Environments with custom deployment-branch policies, their variables, the release-tag ruleset."""

    def __init__(
        self, name: str, args: GithubSettingsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("ai-agents:bootstrap:GithubSettings", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        environments: dict[str, github.RepositoryEnvironment] = {}
        for rule in args.rules:
            reviewers: list[github.RepositoryEnvironmentReviewerArgsDict] = []
            if rule.reviewers:
                reviewers = [{"users": list(args.reviewer_users), "teams": list(args.reviewer_teams)}]
            environment = github.RepositoryEnvironment(
                f"{name}-{rule.name}",
                repository=args.repository,
                environment=rule.name,
                # Custom policies: only the patterns below, never "any protected branch".
                deployment_branch_policy={"protected_branches": False, "custom_branch_policies": True},
                reviewers=reviewers,
                prevent_self_review=rule.reviewers,
                can_admins_bypass=False,
                opts=child,
            )
            environments[rule.name] = environment
            after = pulumi.ResourceOptions(parent=self, depends_on=[environment])
            for pattern in rule.branches:
                github.RepositoryEnvironmentDeploymentPolicy(
                    f"{name}-{rule.name}-branch-{pattern}",
                    repository=args.repository,
                    environment=rule.name,
                    branch_pattern=pattern,
                    opts=after,
                )
            for pattern in rule.tags:
                github.RepositoryEnvironmentDeploymentPolicy(
                    f"{name}-{rule.name}-tag-{pattern}",
                    repository=args.repository,
                    environment=rule.name,
                    tag_pattern=pattern,
                    opts=after,
                )
        for environment_name, variables in args.environment_variables.items():
            after = pulumi.ResourceOptions(parent=self, depends_on=[environments[environment_name]])
            for variable, value in variables.items():
                github.ActionsEnvironmentVariable(
                    f"{name}-{environment_name}-{variable.lower()}",
                    repository=args.repository,
                    environment=environment_name,
                    variable_name=variable,
                    value=value,
                    opts=after,
                )
        for variable, value in args.repository_variables.items():
            github.ActionsVariable(
                f"{name}-{variable.lower()}",
                repository=args.repository,
                variable_name=variable,
                value=value,
                opts=child,
            )
        github.RepositoryRuleset(
            f"{name}-release-tags",
            name="release tags",
            repository=args.repository,
            target="tag",
            enforcement="active",
            conditions={"ref_name": {"includes": [f"refs/tags/{args.release_tag_pattern}"], "excludes": []}},
            rules={"creation": True, "update": True, "deletion": True, "non_fast_forward": True},
            bypass_actors=[
                {
                    "actor_id": args.release_tag_bypass_role_id,
                    "actor_type": "RepositoryRole",
                    "bypass_mode": "always",
                }
            ],
            opts=child,
        )
        self.environments = sorted(environments)
        self.register_outputs({"environments": self.environments})
