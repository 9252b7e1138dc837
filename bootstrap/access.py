"""The AWS side of CI's trust: GitHub's OIDC provider, the state bucket, and per stack a deploy role, a
drift role and a secrets key; one read-only preview role. Documents come from ``bootstrap.policies``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from bootstrap import policies

# Roles may hold a GitHub token's session this long (a production deploy runs up to 90 minutes).
MAX_SESSION_SECONDS = 2 * 3600


@dataclass(frozen=True)
class CiAccessArgs:
    prefix: str
    region: str
    account_id: str
    repository: str  # owner/name, as GitHub spells it
    stacks: Sequence[str]
    key_administrators: Sequence[str]
    break_glass: Sequence[str]
    deploy_policy_arns: Sequence[str]
    read_only_policy_arn: str


@dataclass(frozen=True)
class StackAccess:
    deploy_role_arn: pulumi.Output[str]
    drift_role_arn: pulumi.Output[str]
    key_arn: pulumi.Output[str]
    secrets_provider: str


def _json(doc: policies.Document) -> str:
    return json.dumps(doc, sort_keys=True)


class CiAccess(pulumi.ComponentResource):
    """Everything CI assumes or uses in the account, created once per account."""

    stacks: dict[str, StackAccess]
    preview_role_arn: pulumi.Output[str]
    bucket_name: pulumi.Output[str]
    backend_url: pulumi.Output[str]

    def __init__(self, name: str, args: CiAccessArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ai-agents:bootstrap:CiAccess", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        account, prefix = args.account_id, args.prefix

        provider = aws.iam.OpenIdConnectProvider(
            f"{name}-github",
            url=policies.GITHUB_OIDC_URL,
            client_id_lists=[policies.AUDIENCE],
            opts=child,
        )

        bucket_name = policies.state_bucket_name(prefix, account)
        bucket = aws.s3.Bucket(
            f"{name}-state", bucket=bucket_name, opts=child.merge(pulumi.ResourceOptions(protect=True))
        )
        aws.s3.BucketVersioning(
            f"{name}-state", bucket=bucket.id, versioning_configuration={"status": "Enabled"}, opts=child
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-state",
            bucket=bucket.id,
            rules=[
                {
                    "apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"},
                    "bucket_key_enabled": True,
                }
            ],
            opts=child,
        )
        aws.s3.BucketPublicAccessBlock(
            f"{name}-state",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        aws.s3.BucketOwnershipControls(
            f"{name}-state", bucket=bucket.id, rule={"object_ownership": "BucketOwnerEnforced"}, opts=child
        )

        def role(
            role_name: str, subject: str, managed: Sequence[str], inline: dict[str, policies.Document]
        ) -> aws.iam.Role:
            created = aws.iam.Role(
                role_name,
                name=role_name,
                assume_role_policy=provider.arn.apply(
                    lambda arn: _json(policies.github_trust_policy(arn, subject))
                ),
                max_session_duration=MAX_SESSION_SECONDS,
                opts=child,
            )
            for index, policy_arn in enumerate(managed):
                aws.iam.RolePolicyAttachment(
                    f"{role_name}-managed-{index}", role=created.name, policy_arn=policy_arn, opts=child
                )
            for policy_name, doc in inline.items():
                aws.iam.RolePolicy(
                    f"{role_name}-{policy_name}",
                    role=created.name,
                    name=policy_name,
                    policy=_json(doc),
                    opts=child,
                )
            return created

        ci_roles = [
            policies.role_arn(account, policies.role_name(prefix, purpose, stack))
            for stack in args.stacks
            for purpose in ("deploy", "drift")
        ] + [policies.role_arn(account, policies.role_name(prefix, "preview"))]
        guard = policies.deploy_guard_policy(
            protected_roles=[*ci_roles, *args.key_administrators, *args.break_glass],
            oidc_provider=f"arn:aws:iam::{account}:oidc-provider/{policies.GITHUB_OIDC_HOST}",
            bucket=bucket_name,
        )

        self.stacks = {}
        deploy_roles: dict[str, aws.iam.Role] = {}
        drift_roles: dict[str, aws.iam.Role] = {}
        for stack in args.stacks:
            deploy = role(
                policies.role_name(prefix, "deploy", stack),
                policies.deploy_subject(args.repository, stack),
                args.deploy_policy_arns,
                {"guard": guard},
            )
            drift = role(
                policies.role_name(prefix, "drift", stack),
                policies.drift_subject(args.repository, stack),
                [args.read_only_policy_arn],
                {"lock": policies.drift_lock_policy(bucket_name, stack)},
            )
            deploy_roles[stack], drift_roles[stack] = deploy, drift
            key = aws.kms.Key(
                f"{name}-{stack}-secrets",
                description=f"Pulumi secrets provider of the {stack} stack (only its deploy role uses it)",
                enable_key_rotation=True,
                deletion_window_in_days=30,
                # The roles' ARNs come from the roles, so the key waits for them: KMS rejects a policy
                # naming a principal that does not exist.
                policy=pulumi.Output.all(deploy.arn, drift.arn).apply(
                    lambda arns: _json(
                        policies.secrets_key_policy(
                            administrators=args.key_administrators,
                            deploy_role=arns[0],
                            drift_role=arns[1],
                            break_glass=args.break_glass,
                        )
                    )
                ),
                opts=child.merge(pulumi.ResourceOptions(protect=True)),
            )
            aws.kms.Alias(
                f"{name}-{stack}-secrets",
                name=policies.key_alias(prefix, stack),
                target_key_id=key.key_id,
                opts=child,
            )
            self.stacks[stack] = StackAccess(
                deploy_role_arn=deploy.arn,
                drift_role_arn=drift.arn,
                key_arn=key.arn,
                secrets_provider=policies.secrets_provider(prefix, stack, args.region),
            )

        preview = role(
            policies.role_name(prefix, "preview"),
            policies.preview_subject(args.repository),
            [args.read_only_policy_arn],
            {"guard": policies.preview_guard_policy(bucket_name)},
        )

        all_roles = [*deploy_roles.values(), *drift_roles.values()]
        aws.s3.BucketPolicy(
            f"{name}-state",
            bucket=bucket.id,
            policy=pulumi.Output.all(*[r.arn for r in all_roles]).apply(
                lambda _: _json(
                    policies.state_bucket_policy(
                        bucket_name,
                        deploy_roles={
                            s: policies.role_arn(account, policies.role_name(prefix, "deploy", s))
                            for s in args.stacks
                        },
                        drift_roles={
                            s: policies.role_arn(account, policies.role_name(prefix, "drift", s))
                            for s in args.stacks
                        },
                        administrators=args.key_administrators,
                        break_glass=args.break_glass,
                    )
                )
            ),
            opts=child,
        )

        self.preview_role_arn = preview.arn
        self.bucket_name = bucket.bucket
        self.backend_url = bucket.bucket.apply(lambda b: policies.backend_url(b, args.region))
        self.register_outputs(
            {
                "preview_role_arn": self.preview_role_arn,
                "backend_url": self.backend_url,
                **{f"{s}_deploy_role_arn": a.deploy_role_arn for s, a in self.stacks.items()},
                **{f"{s}_drift_role_arn": a.drift_role_arn for s, a in self.stacks.items()},
                **{f"{s}_key_arn": a.key_arn for s, a in self.stacks.items()},
            }
        )
