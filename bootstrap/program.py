"""The bootstrap program: the account's CI trust on AWS, then the repository's environments on GitHub.

Its outputs are what the workflows and the platform's stacks need: the backend URL for `pulumi login`,
each stack's secrets provider for `pulumi stack init`, and the role ARNs (also written into the GitHub
environments' variables when `github.manageSettings` is true).
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws
import pulumi_github as github

from bootstrap.access import CiAccess, CiAccessArgs
from bootstrap.config import BootstrapConfig, BootstrapConfigError, load_from_pulumi
from bootstrap.environments import GithubSettings, GithubSettingsArgs, environment_rules
from bootstrap.policies import drift_environment
from bootstrap.runners import CiRunner, CiRunnerArgs


def build(config: BootstrapConfig) -> CiAccess:
    identity = aws.get_caller_identity()
    if identity.account_id != config.account_id:
        raise BootstrapConfigError(
            f"these credentials are for account {identity.account_id}, the stack bootstraps {config.account_id}"
        )
    access = CiAccess(
        config.prefix,
        CiAccessArgs(
            prefix=config.prefix,
            region=config.region,
            account_id=config.account_id,
            repository=config.github.full_name,
            stacks=list(config.stacks),
            key_administrators=list(config.key_administrator_arns),
            break_glass=list(config.break_glass_role_arns),
            deploy_policy_arns=list(config.deploy_policy_arns),
            read_only_policy_arn=config.read_only_policy_arn,
        ),
    )
    for stack, runner in config.runners.items():
        assert config.codebuild_connection_arn  # the config requires it with runners
        built = CiRunner(
            f"{config.prefix}-runner-{stack}",
            CiRunnerArgs(
                prefix=config.prefix,
                stack=stack,
                region=config.region,
                account_id=config.account_id,
                repository_url=f"https://github.com/{config.github.full_name}",
                connection_arn=config.codebuild_connection_arn,
                vpc_id=runner.vpc_id,
                subnet_ids=list(runner.subnet_ids),
                compute_type=runner.compute_type,
            ),
        )
        pulumi.export(f"{stack}RunnerSecurityGroupId", built.security_group_id)
    if config.github.manage_settings:
        provider = github.Provider("github", owner=config.github.owner)
        environment_variables: dict[str, dict[str, pulumi.Input[str]]] = {}
        for stack, stack_access in access.stacks.items():
            environment_variables[stack] = {"AWS_DEPLOY_ROLE_ARN": stack_access.deploy_role_arn}
            environment_variables[drift_environment(stack)] = {
                "AWS_DRIFT_ROLE_ARN": stack_access.drift_role_arn
            }
        GithubSettings(
            "github",
            GithubSettingsArgs(
                repository=config.github.repository,
                rules=environment_rules(config),
                reviewer_users=config.github.production_reviewers.users,
                reviewer_teams=config.github.production_reviewers.teams,
                release_tag_pattern=config.github.release_tag_pattern,
                release_tag_bypass_role_id=config.github.release_tag_bypass_role_id,
                environment_variables=environment_variables,
                repository_variables={
                    "AWS_REGION": config.region,
                    "AWS_PREVIEW_ROLE_ARN": access.preview_role_arn,
                    "PULUMI_BACKEND_URL": access.backend_url,
                },
            ),
            opts=pulumi.ResourceOptions(providers=[provider]),
        )
    return access


def main() -> None:
    config = load_from_pulumi()
    access = build(config)
    pulumi.export("backendUrl", access.backend_url)
    pulumi.export("previewRoleArn", access.preview_role_arn)
    for stack, stack_access in access.stacks.items():
        pulumi.export(
            stack,
            {
                "deployRoleArn": stack_access.deploy_role_arn,
                "driftRoleArn": stack_access.drift_role_arn,
                "secretsKeyArn": stack_access.key_arn,
                "secretsProvider": stack_access.secrets_provider,
            },
        )
