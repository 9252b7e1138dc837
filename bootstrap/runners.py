"""CI runners inside a stack's VPC: a CodeBuild project that GitHub Actions jobs run on.

The cluster's API endpoint is private, so the jobs that talk to it (deploy, same-repository preview,
drift) run in the stack's private subnets. CodeBuild starts one ephemeral runner per queued job whose
``runs-on`` names the project (``codebuild-<project>-${{ github.run_id }}-${{ github.run_attempt }}``,
the label format of the CodeBuild-hosted GitHub Actions runner). The runner holds no AWS rights of its
own that a job could use: jobs still assume their role through GitHub's OIDC token, exactly as on a
GitHub-hosted runner; the project's service role only writes the runner's logs and places its network
interface in the VPC.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

# Ubuntu (what actions/setup-python's prebuilt interpreters are built for), x86_64.
RUNNER_IMAGE = "aws/codebuild/standard:7.0"
HTTPS = 443


def runner_project_name(prefix: str, stack: str) -> str:
    """The CodeBuild project, and so the ``runs-on`` label, of a stack's runner."""
    return f"{prefix}-runner-{stack}"


@dataclass(frozen=True)
class CiRunnerArgs:
    prefix: str
    stack: str
    region: str
    account_id: str
    repository_url: str  # https://github.com/<owner>/<repo>
    connection_arn: str  # the account's CodeConnections connection to GitHub
    vpc_id: str
    subnet_ids: Sequence[str]
    compute_type: str
    log_retention_days: int = 90


class CiRunner(pulumi.ComponentResource):
    """A CodeBuild-hosted GitHub Actions runner in a stack's private subnets."""

    project_name: str
    security_group_id: pulumi.Output[str]

    def __init__(self, name: str, args: CiRunnerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ai-agents:bootstrap:CiRunner", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        project = runner_project_name(args.prefix, args.stack)

        # Out: HTTPS only (GitHub, PyPI, AWS APIs through the NAT gateways, the cluster's private
        # endpoint). Nothing comes in. The cluster admits this group (cluster.apiClientSecurityGroupIds).
        group = aws.ec2.SecurityGroup(
            f"{name}-sg",
            vpc_id=args.vpc_id,
            description=f"CI runner of {args.stack}: HTTPS out, nothing in",
            tags={"Name": project},
            opts=child,
        )
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-https-out",
            security_group_id=group.id,
            ip_protocol="tcp",
            from_port=HTTPS,
            to_port=HTTPS,
            cidr_ipv4="0.0.0.0/0",
            description="GitHub, package indexes, AWS APIs, the cluster's endpoint",
            opts=child,
        )
        logs = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=f"/aws/codebuild/{project}",
            retention_in_days=args.log_retention_days,
            opts=child,
        )
        role = aws.iam.Role(
            f"{name}-role",
            name=project,
            assume_role_policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "codebuild.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                            "Condition": {"StringEquals": {"aws:SourceAccount": args.account_id}},
                        }
                    ],
                }
            ),
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-role",
            role=role.id,
            name="runner",
            policy=logs.arn.apply(lambda arn: self._policy(args, arn)),
            opts=child,
        )
        codebuild = aws.codebuild.Project(
            f"{name}-project",
            name=project,
            description=f"GitHub Actions runner in the {args.stack} VPC",
            service_role=role.arn,
            build_timeout=120,
            source=aws.codebuild.ProjectSourceArgs(
                type="GITHUB",
                location=args.repository_url,
                auth=aws.codebuild.ProjectSourceAuthArgs(
                    type="CODECONNECTIONS", resource=args.connection_arn
                ),
            ),
            artifacts=aws.codebuild.ProjectArtifactsArgs(type="NO_ARTIFACTS"),
            environment=aws.codebuild.ProjectEnvironmentArgs(
                type="LINUX_CONTAINER",
                compute_type=args.compute_type,
                image=RUNNER_IMAGE,
                privileged_mode=False,
            ),
            vpc_config=aws.codebuild.ProjectVpcConfigArgs(
                vpc_id=args.vpc_id, subnets=list(args.subnet_ids), security_group_ids=[group.id]
            ),
            logs_config=aws.codebuild.ProjectLogsConfigArgs(
                cloudwatch_logs=aws.codebuild.ProjectLogsConfigCloudwatchLogsArgs(group_name=logs.name)
            ),
            opts=child.merge(pulumi.ResourceOptions(depends_on=[logs])),
        )
        # One build per queued workflow job whose runs-on names this project.
        aws.codebuild.Webhook(
            f"{name}-webhook",
            project_name=codebuild.name,
            build_type="BUILD",
            filter_groups=[
                aws.codebuild.WebhookFilterGroupArgs(
                    filters=[
                        aws.codebuild.WebhookFilterGroupFilterArgs(
                            type="EVENT", pattern="WORKFLOW_JOB_QUEUED"
                        )
                    ]
                )
            ],
            opts=child,
        )
        self.project_name = project
        self.security_group_id = group.id
        self.register_outputs({"project_name": project, "security_group_id": self.security_group_id})

    @staticmethod
    def _policy(args: CiRunnerArgs, log_group_arn: str) -> str:
        """Logs to its own group, and the network interface CodeBuild places in the given subnets."""
        region, account = args.region, args.account_id
        subnets = [f"arn:aws:ec2:{region}:{account}:subnet/{s}" for s in args.subnet_ids]
        return json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "Logs",
                        "Effect": "Allow",
                        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                        "Resource": f"{log_group_arn}:*",
                    },
                    {
                        # Describe* are defined by AWS without resource types: "*" is the only choice.
                        "Sid": "DescribeNetwork",
                        "Effect": "Allow",
                        "Action": [
                            "ec2:DescribeDhcpOptions",
                            "ec2:DescribeNetworkInterfaces",
                            "ec2:DescribeSecurityGroups",
                            "ec2:DescribeSubnets",
                            "ec2:DescribeVpcs",
                        ],
                        "Resource": "*",
                    },
                    {
                        "Sid": "RunnerInterface",
                        "Effect": "Allow",
                        "Action": ["ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface"],
                        "Resource": [
                            f"arn:aws:ec2:{region}:{account}:network-interface/*",
                            f"arn:aws:ec2:{region}:{account}:security-group/*",
                            *subnets,
                        ],
                    },
                    {
                        "Sid": "RunnerInterfaceForCodeBuild",
                        "Effect": "Allow",
                        "Action": "ec2:CreateNetworkInterfacePermission",
                        "Resource": f"arn:aws:ec2:{region}:{account}:network-interface/*",
                        "Condition": {
                            "StringEquals": {"ec2:AuthorizedService": "codebuild.amazonaws.com"},
                            "ArnEquals": {"ec2:Subnet": subnets},
                        },
                    },
                ],
            }
        )
