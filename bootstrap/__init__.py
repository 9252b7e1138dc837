"""The account-level Pulumi project: run once per AWS account, before the platform's stacks.

It creates what the platform's CI trusts: GitHub's OIDC provider, one deploy role and one drift role
per stack, the read-only preview role, a KMS key per stack for Pulumi's secrets provider, the S3 state
bucket, and, with the GitHub provider, the environments whose deployment-branch rules the roles rely on.
See docs/runbook.md, "Bootstrap the account".
"""
