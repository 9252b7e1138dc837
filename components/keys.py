"""Customer-managed KMS keys, one per purpose, rotated yearly by AWS.

One key per purpose keeps blast radius and audit trails apart: revoking the logs key cannot make the
database unreadable, and a CloudTrail ``Decrypt`` names which data was touched.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumi_aws as aws

KeyPurpose = Literal["eks", "rds", "elasticache", "ecr", "secrets", "logs"]
PURPOSES: tuple[KeyPurpose, ...] = ("eks", "rds", "elasticache", "ecr", "secrets", "logs")


def key_policy(account_id: str, region: str, purpose: KeyPurpose) -> str:
    """The account administers the key through IAM; CloudWatch Logs may use the logs key for its groups."""
    statements: list[dict[str, object]] = [
        {
            "Sid": "AccountAdministersThroughIam",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
            "Action": "kms:*",
            "Resource": "*",
        }
    ]
    if purpose == "logs":
        statements.append(
            {
                "Sid": "CloudWatchLogsEncryptsItsGroups",
                "Effect": "Allow",
                "Principal": {"Service": f"logs.{region}.amazonaws.com"},
                "Action": [
                    "kms:Encrypt*",
                    "kms:Decrypt*",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:Describe*",
                ],
                "Resource": "*",
                "Condition": {
                    "ArnLike": {"kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:{region}:{account_id}:*"}
                },
            }
        )
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


@dataclass(frozen=True)
class KeysArgs:
    region: str
    # Deletion waits this long so a mistaken `pulumi destroy` can be undone with CancelKeyDeletion.
    deletion_window_days: int = 30
    # Production: the engine refuses to delete or replace what holds state (`protect`).
    protect: bool = False


class Keys(pulumi.ComponentResource):
    """One rotated customer-managed key (and alias) per purpose."""

    arns: dict[KeyPurpose, pulumi.Output[str]]

    def __init__(self, name: str, args: KeysArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ai-agents:keys:Keys", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        account_id = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self)).account_id
        self.arns = {}
        for purpose in PURPOSES:
            key = aws.kms.Key(
                f"{name}-{purpose}",
                description=f"{name}: {purpose} encryption",
                enable_key_rotation=True,
                rotation_period_in_days=365,
                deletion_window_in_days=args.deletion_window_days,
                policy=account_id.apply(lambda acct, p=purpose: key_policy(acct, args.region, p)),
                opts=child.merge(pulumi.ResourceOptions(protect=args.protect)),
            )
            aws.kms.Alias(
                f"{name}-{purpose}", name=f"alias/{name}-{purpose}", target_key_id=key.key_id, opts=child
            )
            self.arns[purpose] = key.arn
        self.register_outputs({f"{purpose}_key_arn": arn for purpose, arn in self.arns.items()})
