"""One violating case for every further branch of a policy whose ``CASES`` entry covers only one.

``CASES`` (tests/policy/cases.py) holds one insecure change per policy, which is also its checked-in
fixture. A policy that reports several distinct problems gets one more case here per problem, so
deleting or inverting any one check fails a test (``make mutation`` found such branches untested).
Same shape and same test as ``CASES``: the change, applied to the compliant plan, must make the
policy report exactly that message on exactly that resource.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from components.cluster_settings import KUBERNETES_VERSIONS
from tests.policy.cases import (
    C0,
    CACHE,
    CACHE_PARAMS,
    DB_RULE,
    DELETE,
    DEPLOY,
    EKS,
    EKS_AWS,
    LB_SG,
    LT,
    MNG,
    RDS,
    RDS_PARAMS,
    REPO,
    ROLE_POLICY,
    STACK_WIDE,
    Case,
    Plan,
    _entry,
    _policy_json,
    _remove,
    find,
    urn,
)

NODE_GROUP = ("aws:eks/nodeGroup:NodeGroup", "general-nodeGroup")
INGRESS = ("kubernetes:networking.k8s.io/v1:Ingress", "api")
CONFIG = ("kubernetes:core/v1:ConfigMap", "app-config")
TOPIC = ("aws:sns/topic:Topic", "alarms")
CACHE_NODE = ("aws:elasticache/cluster:Cluster", "cache-node")
POD = "spec.template.spec"
NAMESPACE = ("kubernetes:core/v1:Namespace", "ai-agents")
NODE_GROUP_V2 = ("eks:index:NodeGroupV2", "extra-nodes")


def _add(type_: str, name: str, props: dict[str, Any]) -> Callable[[Plan], None]:
    def change(plan: Plan) -> None:
        plan.append(_entry(name, type_, props))

    return change


def _remove_alarms(*names: str) -> Callable[[Plan], None]:
    def change(plan: Plan) -> None:
        for name in names:
            plan.remove(find(plan, "aws:cloudwatch/metricAlarm:MetricAlarm", name))

    return change


def _one_cache_node_unnumbered(plan: Plan) -> None:
    """No numCacheClusters: one node, so alarms on one node each are enough."""
    _remove_alarms(
        *(
            f"cache-{m}-{node}"
            for m in ("DatabaseMemoryUsagePercentage", "Evictions", "EngineCPUUtilization")
            for node in (2, 3)
        )
    )(plan)
    find(plan, *CACHE)["props"].pop("numCacheClusters")


def _rule_depends_on(group: str) -> Callable[[Plan], None]:
    """The database's ingress rule takes its source from ``group`` instead of the cluster."""

    def change(plan: Plan) -> None:
        find(plan, *DB_RULE)["dependsOn"] = [urn(SG, "db-sg"), urn(SG, group)]

    return change


SG = "aws:ec2/securityGroup:SecurityGroup"
CACHE_SG = (SG, "cache-sg")


def _legacy_rule(plan: Plan) -> None:
    rule = {
        "type": "ingress",
        "protocol": "tcp",
        "fromPort": 5432.0,
        "toPort": 5432.0,
        "cidrBlocks": ["10.0.0.0/8"],
    }
    plan.append(
        _entry("db-legacy", "aws:ec2/securityGroupRule:SecurityGroupRule", rule, deps=(urn(SG, "db-sg"),))
    )


def _rule_from_nested_cluster_group(plan: Plan) -> None:
    plan.append(_entry("deep-sg", SG, {"vpcId": "vpc-0abc"}, parent=urn(SG, "cluster-sg")))
    _rule_depends_on("deep-sg")(plan)


def _db_depends_on_an_unknown_urn(plan: Plan) -> None:
    find(plan, *RDS)["dependsOn"].append(urn("aws:ec2/subnet:Subnet", "not-in-this-plan"))


def _identified_db_without_cpu_alarm(plan: Plan) -> None:
    find(plan, *RDS)["props"]["identifier"] = "db"
    _remove_alarms("db-CPUUtilization")(plan)


LIFECYCLE = ("aws:ecr/lifecyclePolicy:LifecyclePolicy", "api")
LEGACY = "aws:ec2/securityGroupRule:SecurityGroupRule"
PDB = ("kubernetes:policy/v1:PodDisruptionBudget", "api-pdb")


def _lifecycle_names_the_repository_only(plan: Plan) -> None:
    """The lifecycle policy names the repository by its physical name and does not depend on it."""
    find(plan, *LIFECYCLE)["dependsOn"] = []


def _legacy_open_rule(type_: str) -> Callable[[Plan], None]:
    """A legacy rule of ``type_`` (ingress or egress) on the cache group, open to the whole internet."""
    rule = {"type": type_, "protocol": "-1", "fromPort": 0.0, "toPort": 0.0, "cidrBlocks": ["0.0.0.0/0"]}
    return _add(LEGACY, "cache-open", rule)


def _legacy_ipv6_ssh(plan: Plan) -> None:
    rule = {
        "type": "ingress",
        "protocol": "tcp",
        "fromPort": 22.0,
        "toPort": 22.0,
        "ipv6CidrBlocks": ["::/0"],
    }
    plan.append(_entry("ssh-v6", LEGACY, rule))


def _legacy_rule_from_cluster_group(plan: Plan) -> None:
    rule = {
        "type": "ingress",
        "protocol": "tcp",
        "fromPort": 5432.0,
        "toPort": 5432.0,
        "sourceSecurityGroupId": "sg-0cluster",
    }
    deps = (urn(SG, "db-sg"), urn(SG, "cluster-sg"))
    plan.append(_entry("db-legacy", LEGACY, rule, deps=deps))


def _db_waits_for_a_load_balancer_rule(plan: Plan) -> None:
    """The database depends on a rule (in the plan, not a security group) that opens the load balancer."""
    rule = {"ipProtocol": "tcp", "fromPort": 443.0, "toPort": 443.0, "cidrIpv4": "0.0.0.0/0"}
    plan.append(_entry("lb-https", DB_RULE[0], rule, deps=(urn(*LB_SG),)))
    find(plan, *RDS)["dependsOn"].append(urn(DB_RULE[0], "lb-https"))


def _two_statements(first: dict[str, Any], second: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [first, second]})


@dataclass(frozen=True)
class BranchCase(Case):
    branch: str = ""

    @property
    def id(self) -> str:
        return f"{self.policy}[{self.branch}]"


BRANCH_CASES: list[BranchCase] = [
    # RDS
    BranchCase(
        "rds-storage-encrypted-cmk",
        RDS,
        {"storageEncrypted": False},
        "RDS instance db does not set storageEncrypted=true.",
        branch="storage-not-encrypted",
    ),
    BranchCase(
        "rds-storage-encrypted-cmk",
        RDS,
        {"kmsKeyId": "arn:aws:kms:eu-west-1:123456789012:alias/aws/rds"},
        "RDS instance db is not encrypted with a customer-managed KMS key (kmsKeyId).",
        branch="aws-managed-key",
    ),
    BranchCase(
        "rds-no-plaintext-password",
        RDS,
        {"manageMasterUserPassword": DELETE},
        "RDS instance db neither lets RDS manage the master password nor takes it from a secret.",
        branch="no-password-source",
    ),
    BranchCase(
        "rds-backup-retention",
        RDS,
        {"backupRetentionPeriod": DELETE},
        "RDS instance db keeps backups 0 day(s); the minimum on this stack is 14.",
        branch="unset",
    ),
    BranchCase(
        "rds-force-ssl",
        RDS,
        {"parameterGroupName": "default.postgres17"},
        "RDS instance db uses the default parameter group, where rds.force_ssl is off.",
        branch="default-parameter-group",
    ),
    BranchCase(
        "rds-not-default-vpc",
        RDS,
        {"vpcSecurityGroupIds": []},
        "RDS instance db has no vpcSecurityGroupIds, so it gets the VPC's default security group.",
        branch="default-security-group",
    ),
    BranchCase(
        "rds-not-default-vpc",
        RDS,
        {"dbSubnetGroupName": "Default"},
        "RDS instance db has no DB subnet group, so it lands in the default VPC.",
        branch="named-default-subnet-group",
    ),
    # ElastiCache
    BranchCase(
        "elasticache-transit-encryption",
        CACHE,
        {"transitEncryptionMode": "preferred"},
        "ElastiCache cache has transitEncryptionMode=preferred, which still accepts plaintext.",
        branch="preferred-mode",
    ),
    BranchCase(
        "elasticache-at-rest-encryption",
        CACHE,
        {"kmsKeyId": DELETE},
        "ElastiCache cache encrypts at rest with the AWS-owned key instead of a customer-managed KMS key.",
        branch="aws-owned-key",
    ),
    BranchCase(
        "elasticache-automatic-failover",
        CACHE,
        {"multiAzEnabled": False},
        "ElastiCache cache does not spread its nodes over availability zones (multiAzEnabled).",
        branch="single-az",
    ),
    BranchCase(
        "elasticache-replicas",
        CACHE,
        {"replicasPerNodeGroup": 0.0},
        "ElastiCache cache has 0 replica(s); at least 1 are required.",
        branch="cluster-mode-replicas-win-over-node-count",
    ),
    BranchCase(
        "elasticache-replicas",
        CACHE,
        {"numCacheClusters": DELETE},
        "ElastiCache cache has 0 replica(s); at least 1 are required.",
        branch="no-count-at-all",
    ),
    BranchCase(
        "elasticache-replication-group-only",
        CACHE_NODE,
        _add(*CACHE_NODE, {"engine": "valkey", "numCacheNodes": 1.0}),
        "ElastiCache cluster cache-node is a standalone valkey node: no TLS+AUTH+failover guarantees.",
        branch="standalone-valkey",
    ),
    BranchCase(
        "elasticache-broker-no-eviction",
        CACHE,
        {"parameterGroupName": "default.valkey8"},
        "ElastiCache cache uses a default parameter group, whose maxmemory-policy evicts keys (queued tasks).",
        branch="default-parameter-group",
    ),
    BranchCase(
        "elasticache-broker-no-eviction",
        CACHE,
        {"parameterGroupName": DELETE},
        "ElastiCache cache uses a default parameter group, whose maxmemory-policy evicts keys (queued tasks).",
        branch="no-parameter-group",
    ),
    BranchCase(
        "elasticache-broker-no-eviction",
        CACHE_PARAMS,
        {"parameters": []},
        "ElastiCache parameter group cache-params has maxmemory-policy=volatile-lru (default): "
        "a full broker silently drops tasks.",
        branch="policy-unset",
    ),
    # EKS
    BranchCase(
        "eks-secrets-encryption",
        EKS_AWS,
        {"encryptionConfig.resources": ["configmaps"]},
        "EKS cluster cluster-eksCluster has no encryptionConfig with a KMS key for the 'secrets' resource.",
        branch="aws-cluster-without-secrets",
    ),
    BranchCase(
        "eks-secrets-encryption",
        EKS_AWS,
        {"encryptionConfig.provider": {}},
        "EKS cluster cluster-eksCluster has no encryptionConfig with a KMS key for the 'secrets' resource.",
        branch="aws-cluster-without-key",
    ),
    BranchCase(
        "eks-public-endpoint-restricted",
        EKS,
        {"publicAccessCidrs": DELETE},
        "EKS cluster cluster has a public API endpoint open to 0.0.0.0/0 (no publicAccessCidrs).",
        branch="no-cidrs",
    ),
    BranchCase(
        "eks-public-endpoint-restricted",
        EKS_AWS,
        {"vpcConfig.endpointPublicAccess": True, "vpcConfig.publicAccessCidrs": ["203.0.113.0/24", "::/0"]},
        "EKS cluster cluster-eksCluster allows its public API endpoint from ::/0.",
        branch="aws-cluster-open-ipv6",
    ),
    BranchCase(
        "eks-public-endpoint-restricted",
        EKS,
        {"publicAccessCidrs": ["::/0", "203.0.113.0/24", "0.0.0.0/0"]},
        "EKS cluster cluster allows its public API endpoint from 0.0.0.0/0, ::/0.",
        branch="both-open-ranges",
    ),
    BranchCase(
        "eks-nodes-private",
        LT,
        {"networkInterfaces": [{"deviceIndex": 0.0}, {"associatePublicIpAddress": True}]},
        "Launch template general-launchTemplate gives nodes a public IP address.",
        branch="launch-template-public-ip",
    ),
    BranchCase(
        "eks-nodes-private",
        EKS,
        {"privateSubnetIds": DELETE},
        "EKS cluster cluster has no privateSubnetIds: nodes and control-plane ENIs go to public subnets.",
        branch="no-private-subnets",
    ),
    BranchCase(
        "eks-nodes-private",
        EKS,
        {"skipDefaultNodeGroup": DELETE, "nodeAssociatePublicIpAddress": DELETE},
        "cluster creates self-managed nodes that may get public IPs (nodeAssociatePublicIpAddress).",
        branch="default-group-unset-public-ip",
    ),
    BranchCase(
        "eks-nodes-private",
        NODE_GROUP_V2,
        _add(*NODE_GROUP_V2, {"skipDefaultNodeGroup": True, "nodeAssociatePublicIpAddress": True}),
        "extra-nodes creates self-managed nodes that may get public IPs (nodeAssociatePublicIpAddress).",
        branch="self-managed-group-public-ip",
    ),
    BranchCase(
        "eks-node-groups-private-subnets",
        NODE_GROUP,
        {"subnetIds": ["subnet-pub-b", "subnet-priv-a", "subnet-pub-a"]},
        "Node group general-nodeGroup places nodes in the cluster's public subnet(s) subnet-pub-a, subnet-pub-b.",
        branch="aws-node-group",
    ),
    BranchCase(
        "eks-supported-version",
        EKS,
        {"version": DELETE},
        f"cluster runs Kubernetes (unpinned); supported versions are {', '.join(KUBERNETES_VERSIONS)}.",
        branch="unpinned",
    ),
    BranchCase(
        "eks-imdsv2-required",
        MNG,
        {"enableIMDSv2": False},
        "Managed node group general does not require IMDSv2 (enableIMDSv2).",
        branch="managed-node-group",
    ),
    BranchCase(
        "eks-imdsv2-required",
        NODE_GROUP,
        {"launchTemplate": DELETE},
        "Node group general-nodeGroup has no launch template, so its instances accept IMDSv1.",
        branch="node-group-without-launch-template",
    ),
    BranchCase(
        "eks-imdsv2-required",
        EKS,
        {"skipDefaultNodeGroup": False},
        "cluster creates self-managed nodes whose instance metadata options this program cannot pin to IMDSv2.",
        branch="default-node-group",
    ),
    # Network
    BranchCase(
        "sg-no-public-ingress",
        LB_SG,
        {"ingress.1": {"protocol": "-1", "fromPort": 0.0, "toPort": 0.0, "cidrBlocks": ["0.0.0.0/0"]}},
        "ingress-lb admits 0.0.0.0/0 on all ports.",
        branch="all-protocols",
    ),
    BranchCase(
        "sg-no-public-ingress",
        LB_SG,
        {"ingress.1": {"protocol": "tcp", "cidrBlocks": ["0.0.0.0/0"]}},
        "ingress-lb admits 0.0.0.0/0 on any port.",
        branch="no-ports",
    ),
    BranchCase(
        "sg-no-public-ingress",
        LB_SG,
        {
            "ingress.1": {
                "protocol": "tcp",
                "fromPort": 1000.0,
                "toPort": 2000.0,
                "cidrBlocks": ["0.0.0.0/0"],
            }
        },
        "ingress-lb admits 0.0.0.0/0 on ports 1000-2000.",
        branch="port-range",
    ),
    BranchCase(
        "sg-no-public-ingress",
        LB_SG,
        {"ingress.1": {"protocol": "tcp", "fromPort": 22.0, "cidrBlocks": ["0.0.0.0/0"]}},
        "ingress-lb admits 0.0.0.0/0 on any port.",
        branch="from-port-only",
    ),
    BranchCase(
        "sg-no-public-ingress",
        LB_SG,
        {"ingress.1": {"protocol": "tcp", "toPort": 22.0, "cidrBlocks": ["0.0.0.0/0"]}},
        "ingress-lb admits 0.0.0.0/0 on any port.",
        branch="to-port-only",
    ),
    BranchCase(
        "data-tier-ingress-from-cluster-only",
        DB_RULE,
        _rule_depends_on("ingress-lb"),
        "Data-tier security group db-sg: db-from-cluster admits a security group other than the cluster's on port 5432.",
        branch="source-group-not-the-clusters",
    ),
    BranchCase(
        "data-tier-ingress-from-cluster-only",
        DB_RULE,
        {"referencedSecurityGroupId": DELETE, "cidrIpv4": "10.10.0.0/16", "cidrIpv6": "fd00::/8"},
        "Data-tier security group db-sg: db-from-cluster admits address ranges 10.10.0.0/16, fd00::/8 on port 5432.",
        branch="two-address-ranges",
    ),
    BranchCase(
        "data-tier-ingress-from-cluster-only",
        CACHE_SG,
        {"ingress.0.self": True, "ingress.0.securityGroups": DELETE},
        "Data-tier security group cache-sg: cache-sg admits its own members (self=true).",
        branch="cache-group-admits-itself",
    ),
    BranchCase(
        "data-tier-ingress-from-cluster-only",
        CACHE_SG,
        {"ingress.0.cidrBlocks": ["10.0.0.0/8"]},
        "Data-tier security group cache-sg: cache-sg admits address ranges 10.0.0.0/8 on port 6379.",
        branch="cache-group-inline-range",
    ),
    BranchCase(
        "data-tier-ingress-from-cluster-only",
        ("aws:ec2/securityGroupRule:SecurityGroupRule", "db-legacy"),
        _legacy_rule,
        "Data-tier security group db-sg: db-legacy admits address ranges 10.0.0.0/8 on port 5432.",
        branch="legacy-rule-resource",
    ),
    BranchCase(
        "sg-no-public-ingress",
        LB_SG,
        {
            "ingress.1": {
                "protocol": "tcp",
                "fromPort": 22.0,
                "toPort": 22.0,
                "cidrBlocks": ["0.0.0.0/0"],
                "ipv6CidrBlocks": ["::/0"],
            }
        },
        "ingress-lb admits 0.0.0.0/0, ::/0 on port 22.",
        branch="both-open-ranges",
    ),
    BranchCase(
        "sg-no-public-ingress",
        CACHE_SG,
        lambda plan: find(plan, *CACHE_SG)["props"]["ingress"].append(
            {"protocol": "tcp", "fromPort": 6379.0, "toPort": 6379.0, "cidrBlocks": ["0.0.0.0/0"]}
        ),
        "cache-sg admits 0.0.0.0/0 on port 6379.",
        branch="open-rule-after-a-private-one",
    ),
    BranchCase(
        "data-tier-ingress-from-cluster-only",
        DB_RULE,
        {"referencedSecurityGroupId": DELETE, "prefixListId": "pl-0abc"},
        "Data-tier security group db-sg: db-from-cluster admits address ranges pl-0abc on port 5432.",
        branch="rule-prefix-list",
    ),
    BranchCase(
        "data-tier-ingress-from-cluster-only",
        CACHE_SG,
        {"ingress.0.prefixListIds": ["pl-0abc"], "ingress.0.securityGroups": DELETE},
        "Data-tier security group cache-sg: cache-sg admits address ranges pl-0abc on port 6379.",
        branch="inline-prefix-list",
    ),
    BranchCase(
        "sg-no-public-ingress",
        LB_SG,
        {"ingress.1": {"protocol": "ALL", "fromPort": 443.0, "toPort": 443.0, "cidrBlocks": ["0.0.0.0/0"]}},
        "ingress-lb admits 0.0.0.0/0 on all ports.",
        branch="all-protocols-in-capitals",
    ),
    BranchCase(
        "sg-no-public-ingress",
        LB_SG,
        {"ingress.1": {"fromPort": 443.0, "toPort": 443.0, "cidrBlocks": ["0.0.0.0/0"]}},
        "ingress-lb admits 0.0.0.0/0 on all ports.",
        branch="protocol-unset-means-all",
    ),
    # ECR
    BranchCase(
        "ecr-immutable-tags",
        REPO,
        {"imageTagMutability": DELETE},
        "ECR repository api has imageTagMutability=MUTABLE: a pushed tag can be overwritten.",
        branch="unset-means-mutable",
    ),
    BranchCase(
        "ecr-kms-encryption",
        REPO,
        {
            "encryptionConfigurations": [
                {"encryptionType": "AES256", "kmsKey": "arn:aws:kms:eu-west-1:1:key/x"}
            ]
        },
        "ECR repository api is not encrypted with a customer-managed KMS key.",
        branch="key-named-but-aes",
    ),
    # IAM
    BranchCase(
        "iam-no-wildcard-actions",
        ROLE_POLICY,
        {
            "policy": _policy_json(
                {"Sid": "AllBut", "Effect": "Allow", "NotAction": "iam:*", "Resource": "arn:aws:s3:::b"}
            )
        },
        "app-policy statement AllBut allows everything except a list (Allow + NotAction).",
        branch="not-action",
    ),
    BranchCase(
        "iam-no-wildcard-actions",
        ROLE_POLICY,
        {"policy": _policy_json({"Effect": "Allow", "Action": ["s3:GetObject", "*"], "Resource": "*"})},
        "app-policy statement (no Sid) allows wildcard action(s) *.",
        branch="star-without-sid",
    ),
    BranchCase(
        "iam-no-wildcard-actions",
        ("aws:iam/role:Role", "app-role"),
        {
            "inlinePolicies": [
                {
                    "name": "inline",
                    "policy": _policy_json(
                        {
                            "Sid": "Inline",
                            "Effect": "Allow",
                            "Action": ["s3:*", "ec2:*"],
                            "Resource": "arn:aws:s3:::b",
                        }
                    ),
                }
            ]
        },
        "app-role statement Inline allows wildcard action(s) s3:*, ec2:*.",
        branch="role-inline-policy",
    ),
    BranchCase(
        "secrets-manager-cmk",
        ("aws:secretsmanager/secret:Secret", "app-secret"),
        {"kmsKeyId": "arn:aws:kms:eu-west-1:123456789012:alias/aws/secretsmanager"},
        "Secret app-secret is encrypted with the AWS-managed key instead of the stack's customer-managed key.",
        branch="aws-managed-key",
    ),
    BranchCase(
        "iam-no-wildcard-resources",
        ROLE_POLICY,
        {
            "policy": _policy_json(
                {
                    "Sid": "AllButOne",
                    "Effect": "Allow",
                    "Action": "s3:GetObject",
                    "NotResource": "arn:aws:s3:::b/*",
                }
            )
        },
        "app-policy statement AllButOne applies to every resource except a list (NotResource).",
        branch="not-resource",
    ),
    BranchCase(
        "iam-no-wildcard-resources",
        ROLE_POLICY,
        {
            "policy": _policy_json(
                {
                    "Sid": "LoginAndRead",
                    "Effect": "Allow",
                    "Action": ["ecr:GetAuthorizationToken", "s3:GetObject"],
                    "Resource": "*",
                }
            )
        },
        "app-policy statement LoginAndRead applies to Resource '*'.",
        branch="exempt-action-mixed-with-another",
    ),
    # Monitoring
    BranchCase(
        "monitoring-installed-in-production",
        ("kubernetes:monitoring.coreos.com/v1:PrometheusRule", "ai-agents-rules"),
        _remove("kubernetes:monitoring.coreos.com/v1:PrometheusRule", "ai-agents-rules"),
        "Production stack declares no PrometheusRule with alerting rules for the service.",
        reported=STACK_WIDE,
        branch="no-rules",
    ),
    BranchCase(
        "monitoring-installed-in-production",
        ("kubernetes:monitoring.coreos.com/v1:ServiceMonitor", "api-monitor"),
        _remove("kubernetes:monitoring.coreos.com/v1:ServiceMonitor", "api-monitor"),
        "Production stack declares no ServiceMonitor or PodMonitor: nothing scrapes the service.",
        reported=STACK_WIDE,
        branch="no-scrape-target",
    ),
    BranchCase(
        "data-store-alarms-in-production",
        CACHE,
        _remove("aws:cloudwatch/metricAlarm:MetricAlarm", "cache-Evictions-2"),
        "ElastiCache replication group cache lacks a CloudWatch alarm with alarmActions on every node for Evictions.",
        branch="cache-node-unwatched",
    ),
    BranchCase(
        "data-store-alarms-in-production",
        ("aws:cloudwatch/metricAlarm:MetricAlarm", "db-FreeStorageSpace"),
        {"namespace": "AWS/EC2"},
        "RDS instance db has no CloudWatch alarm with alarmActions on FreeStorageSpace.",
        reported=RDS,
        branch="alarm-in-another-namespace",
    ),
    BranchCase(
        "data-store-alarms-in-production",
        ("aws:cloudwatch/metricAlarm:MetricAlarm", "db-CPUUtilization"),
        {"alarmActions": [""]},
        "RDS instance db has no CloudWatch alarm with alarmActions on CPUUtilization.",
        reported=RDS,
        branch="alarm-without-a-real-action",
    ),
    BranchCase(
        "data-store-alarms-in-production",
        ("aws:cloudwatch/metricAlarm:MetricAlarm", "db-DatabaseConnections"),
        {"dimensions": {"DBInstanceIdentifier": ["db"]}},
        "RDS instance db has no CloudWatch alarm with alarmActions on DatabaseConnections.",
        reported=RDS,
        branch="alarm-dimension-not-a-name",
    ),
    BranchCase(
        "data-store-alarms-in-production",
        RDS,
        {"identifier": "prod-db"},
        "RDS instance db has no CloudWatch alarm with alarmActions on "
        "CPUUtilization, FreeStorageSpace, DatabaseConnections.",
        branch="alarms-watch-another-identifier",
    ),
    BranchCase(
        "data-store-alarms-in-production",
        CACHE,
        {"replicationGroupId": "other"},
        "ElastiCache replication group cache lacks a CloudWatch alarm with alarmActions on every node for "
        "DatabaseMemoryUsagePercentage, Evictions, EngineCPUUtilization.",
        branch="alarms-watch-another-group",
    ),
    BranchCase(
        "data-store-alarms-in-production",
        CACHE,
        _remove_alarms(*(f"cache-Evictions-{node}" for node in (1, 2, 3))),
        "ElastiCache replication group cache lacks a CloudWatch alarm with alarmActions on every node for Evictions.",
        branch="metric-not-watched-at-all",
    ),
    BranchCase(
        "data-store-alarms-in-production",
        RDS,
        _identified_db_without_cpu_alarm,
        "RDS instance db has no CloudWatch alarm with alarmActions on CPUUtilization.",
        branch="identified-instance-metric-unwatched",
    ),
    BranchCase(
        "sns-topic-encrypted",
        TOPIC,
        {"kmsMasterKeyId": "arn:aws:kms:eu-west-1:123456789012:alias/aws/sns"},
        "SNS topic alarms uses the AWS-managed key, which CloudWatch alarms cannot publish with.",
        branch="aws-managed-key",
    ),
    # Stack
    BranchCase(
        "production-stateful-protected",
        EKS,
        {"deletionProtection": False},
        "eks:index:Cluster cluster has no deletion protection (deletionProtection).",
        branch="cluster-deletion-protection",
    ),
    # Workloads
    BranchCase(
        "k8s-run-as-non-root",
        DEPLOY,
        {f"{C0}.securityContext.runAsNonRoot": False},
        "api: container api does not set runAsNonRoot=true.",
        branch="container-says-no",
    ),
    BranchCase(
        "k8s-run-as-non-root",
        DEPLOY,
        {f"{C0}.securityContext.runAsUser": DELETE, f"{POD}.securityContext.runAsUser": 0.0},
        "api: container api runs as UID 0.",
        branch="pod-level-uid-0",
    ),
    BranchCase(
        "k8s-drop-all-capabilities",
        DEPLOY,
        {f"{C0}.securityContext.capabilities.add": ["sys_admin", "NET_ADMIN", "net_bind_service"]},
        "api: container api adds capabilities NET_ADMIN, SYS_ADMIN.",
        branch="adds-capabilities",
    ),
    BranchCase(
        "k8s-no-privileged",
        DEPLOY,
        {f"{POD}.initContainers": [{"name": "migrate", "securityContext": {"privileged": True}}]},
        "api: container migrate is privileged.",
        branch="init-container",
    ),
    BranchCase(
        "k8s-no-privileged",
        DEPLOY,
        {f"{POD}.ephemeralContainers": [{"image": "busybox", "securityContext": {"privileged": True}}]},
        "api: container ? is privileged.",
        branch="unnamed-ephemeral-container",
    ),
    BranchCase(
        "k8s-seccomp-runtime-default",
        DEPLOY,
        {f"{C0}.securityContext.seccompProfile": {"type": "Unconfined"}},
        "api: container api has seccompProfile Unconfined.",
        branch="container-overrides-the-pod",
    ),
    BranchCase(
        "helm-chart-version-pinned",
        ("kubernetes:helm.sh/v3:Release", "ingress-nginx"),
        {"version": " 4.13.0"},
        "Helm release ingress-nginx does not pin its chart version ( 4.13.0).",
        branch="space-in-version",
    ),
    BranchCase(
        "k8s-no-load-balancer-service",
        ("kubernetes:core/v1:Service", "api"),
        {"spec.type": "LoadBalancer", "metadata.namespace": DELETE, "metadata.name": "public-api"},
        "Service default/public-api is of type LoadBalancer: it gets its own internet-facing load balancer.",
        branch="default-namespace-named-by-its-metadata",
    ),
    BranchCase(
        "k8s-no-latest-image",
        DEPLOY,
        {f"{C0}.image": DELETE},
        "api: container api uses the mutable image (none) (':latest' or no tag).",
        branch="no-image",
    ),
    BranchCase(
        "k8s-image-digest",
        DEPLOY,
        {f"{C0}.image": DELETE},
        "api: container api uses image (none) by tag, not by digest.",
        branch="no-image",
    ),
    BranchCase(
        "k8s-probes",
        DEPLOY,
        {f"{C0}.readinessProbe": DELETE, f"{C0}.livenessProbe": DELETE},
        "api: container api has no livenessProbe and no readinessProbe.",
        branch="neither-probe",
    ),
    BranchCase(
        "k8s-probes",
        DEPLOY,
        {f"{C0}.name": DELETE, f"{C0}.readinessProbe": DELETE},
        "api: container ? has no readinessProbe.",
        branch="unnamed-container",
    ),
    BranchCase(
        "k8s-no-host-path",
        DEPLOY,
        {f"{POD}.volumes.0": {"hostPath": {"path": "/var/log"}}},
        "api mounts the node's filesystem (hostPath volume ?).",
        branch="unnamed-volume",
    ),
    BranchCase(
        "k8s-resources-set",
        DEPLOY,
        {f"{C0}.resources": DELETE},
        "api: container api sets no resources.requests.cpu, resources.requests.memory, resources.limits.memory.",
        branch="no-resources",
    ),
    BranchCase(
        "k8s-namespace-pss-restricted",
        NAMESPACE,
        {"metadata.name": "apps", "metadata.labels": {}},
        "Namespace apps enforces Pod Security Standard (none), not 'restricted'.",
        branch="unlabelled-named-by-its-metadata",
    ),
    BranchCase(
        "k8s-no-host-namespaces",
        DEPLOY,
        {f"{C0}.ports": [{"containerPort": 8000.0}, {"containerPort": 9000.0, "hostPort": 9000.0}]},
        "api: container api binds a hostPort.",
        branch="host-port",
    ),
    BranchCase(
        "k8s-no-host-namespaces",
        DEPLOY,
        {f"{POD}.hostPID": True, f"{POD}.hostIPC": True},
        "api shares the node's namespaces (hostPID, hostIPC=true).",
        branch="pid-and-ipc",
    ),
    BranchCase(
        "k8s-no-host-namespaces",
        DEPLOY,
        {f"{C0}.name": DELETE, f"{C0}.ports": [{"containerPort": 80.0, "hostPort": 80.0}]},
        "api: container ? binds a hostPort.",
        branch="unnamed-container-host-port",
    ),
    BranchCase(
        "helm-chart-version-pinned",
        ("kubernetes:helm.sh/v3:Release", "ingress-nginx"),
        {"version": "4.13.x"},
        "Helm release ingress-nginx does not pin its chart version (4.13.x).",
        branch="wildcard-minor",
    ),
    BranchCase(
        "k8s-ingress-tls",
        INGRESS,
        {"spec.rules": [{"host": "a.example.com"}, {"host": "api.example.com"}, {"host": "b.example.com"}]},
        "Ingress api serves host(s) a.example.com, b.example.com without a TLS entry.",
        branch="two-hosts-without-tls",
    ),
    BranchCase(
        "k8s-app-config-verified-tls",
        CONFIG,
        {
            "data.DATABASE_HOST": DELETE,
            "data.DATABASE_URL": "postgresql://db.example.internal/app?sslmode=disable",
        },
        "ConfigMap app-config connects to PostgreSQL with sslmode disable, not verify-full.",
        branch="url-only",
    ),
    BranchCase(
        "k8s-app-config-verified-tls",
        CONFIG,
        {"data.DATABASE_SSLMODE": DELETE},
        "ConfigMap app-config connects to PostgreSQL with sslmode unset, not verify-full.",
        branch="sslmode-unset",
    ),
    BranchCase(
        "k8s-ingress-tls",
        INGRESS,
        {"spec.rules": [{"host": "api.example.com"}, {"host": "admin.example.com"}]},
        "Ingress api serves host(s) admin.example.com without a TLS entry.",
        branch="host-without-tls",
    ),
    BranchCase(
        "k8s-no-secrets-in-configmap",
        CONFIG,
        {"data.UPSTREAM": "https://svc:hunter22@upstream.example.com/"},
        "ConfigMap app-config key UPSTREAM holds a credential (private key or password in a URL).",
        branch="password-in-url",
    ),
    BranchCase(
        "k8s-no-secrets-in-configmap",
        CONFIG,
        {"binaryData.TLS_PRIVATE_KEY": "-----BEGIN RSA PRIVATE KEY-----"},
        "ConfigMap app-config key TLS_PRIVATE_KEY looks like a secret.",
        branch="binary-data",
    ),
    BranchCase(
        "k8s-app-config-verified-tls",
        CONFIG,
        {"data.DATABASE_SSLROOTCERT": DELETE},
        "ConfigMap app-config names no DATABASE_SSLROOTCERT to verify the database's certificate against.",
        branch="no-root-cert",
    ),
    BranchCase(
        "k8s-app-config-verified-tls",
        CONFIG,
        {"data.DATABASE_URL": "postgresql://db.example.internal/app?sslmode=require"},
        "ConfigMap app-config connects to PostgreSQL with sslmode require, not verify-full.",
        branch="sslmode-in-url",
    ),
    BranchCase(
        "k8s-app-config-verified-tls",
        CONFIG,
        {"data.REDIS_URL": "redis://master.cache.example.com:6379/0"},
        "ConfigMap app-config REDIS_URL does not use verified TLS (rediss:// with certificate checks).",
        branch="redis-url-plaintext",
    ),
    BranchCase(
        "k8s-app-config-verified-tls",
        CONFIG,
        {"data.REDIS_URL": "rediss://master.cache.example.com:6379/0?ssl_cert_reqs=none"},
        "ConfigMap app-config REDIS_URL does not use verified TLS (rediss:// with certificate checks).",
        branch="redis-url-unverified",
    ),
    BranchCase(
        "k8s-app-config-verified-tls",
        CONFIG,
        {"data.REDIS_HOST": "master.cache.example.com", "data.REDIS_TLS": "false"},
        "ConfigMap app-config connects to Redis without REDIS_TLS=true.",
        branch="redis-host-without-tls",
    ),
    # Mutation-found branches: lifecycle policies, IAM statements, legacy rules, PDBs, images
    BranchCase(
        "iam-no-wildcard-resources",
        ROLE_POLICY,
        {"policy": _policy_json({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"})},
        "app-policy statement (no Sid) applies to Resource '*'.",
        branch="star-without-sid",
    ),
    BranchCase(
        "iam-no-wildcard-resources",
        ROLE_POLICY,
        {
            "policy": _two_statements(
                {
                    "Sid": "Scoped",
                    "Effect": "Allow",
                    "Action": "s3:GetObject",
                    "Resource": "arn:aws:s3:::b/*",
                },
                {"Sid": "AnyObject", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
            )
        },
        "app-policy statement AnyObject applies to Resource '*'.",
        branch="star-after-a-scoped-statement",
    ),
    BranchCase(
        "sg-no-public-ingress",
        (LEGACY, "ssh-v6"),
        _legacy_ipv6_ssh,
        "ssh-v6 admits ::/0 on port 22.",
        branch="legacy-rule-ipv6-range",
    ),
    BranchCase(
        "k8s-deployment-has-pdb",
        PDB,
        {"metadata.namespace": "edge"},
        "Deployment ai-agents/api has no PodDisruptionBudget selecting its pods.",
        reported=DEPLOY,
        branch="budget-in-another-namespace",
    ),
    BranchCase(
        "k8s-deployment-has-pdb",
        PDB,
        {"spec.selector.matchLabels": {}},
        "Deployment ai-agents/api has no PodDisruptionBudget selecting its pods.",
        reported=DEPLOY,
        branch="budget-with-an-empty-selector",
    ),
    BranchCase(
        "k8s-deployment-has-pdb",
        DEPLOY,
        {"metadata.namespace": DELETE},
        "Deployment default/api has no PodDisruptionBudget selecting its pods.",
        branch="no-namespace-is-default",
    ),
    BranchCase(
        "images-from-stack-ecr",
        DEPLOY,
        {f"{C0}.image": DELETE},
        "api: image (none) does not come from this stack's ECR.",
        branch="container-without-image",
    ),
]


def _as_pod_monitor(plan: Plan) -> None:
    monitor = find(plan, "kubernetes:monitoring.coreos.com/v1:ServiceMonitor", "api-monitor")
    monitor["type"] = "kubernetes:monitoring.coreos.com/v1:PodMonitor"


@dataclass(frozen=True)
class Allowed:
    """A change next to a policy's violations that the policy must not report (the other side of a branch)."""

    policy: str
    change: dict[str, Any] | Callable[[Plan], None]
    target: tuple[str, str] = ("", "")
    branch: str = ""

    @property
    def id(self) -> str:
        return f"{self.policy}[{self.branch}]"


ALLOWED: list[Allowed] = [
    Allowed(
        "k8s-app-config-verified-tls",
        {"data.REDIS_URL": DELETE, "data.REDIS_HOST": "master.cache.example.com", "data.REDIS_TLS": "True"},
        CONFIG,
        branch="redis-host-with-tls-in-any-case",
    ),
    Allowed(
        "k8s-no-secrets-in-configmap",
        {"data.DATABASE_SECRET": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-1"},
        CONFIG,
        branch="secret-named-by-its-arn",
    ),
    Allowed(
        "k8s-no-latest-image",
        {f"{C0}.image": "registry.example.com:5000/team/api:1.4.2"},
        DEPLOY,
        branch="tag-after-a-registry-port",
    ),
    Allowed(
        "kms-key-rotation",
        {"enableKeyRotation": False, "customerMasterKeySpec": "RSA_2048"},
        ("aws:kms/key:Key", "key"),
        branch="asymmetric-keys-cannot-rotate",
    ),
    Allowed(
        "k8s-probes",
        {f"{POD}.initContainers": [{"name": "wait-for-db", "image": "busybox"}]},
        DEPLOY,
        branch="init-containers-need-no-probes",
    ),
    Allowed(
        "k8s-run-as-non-root",
        {f"{C0}.securityContext.runAsNonRoot": DELETE},
        DEPLOY,
        branch="pod-level-non-root",
    ),
    Allowed(
        "k8s-drop-all-capabilities",
        {f"{C0}.securityContext.capabilities.add": ["net_bind_service"]},
        DEPLOY,
        branch="bind-low-ports",
    ),
    Allowed(
        "k8s-seccomp-runtime-default",
        {f"{POD}.securityContext.seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}},
        DEPLOY,
        branch="localhost-profile",
    ),
    Allowed(
        "data-tier-ingress-from-cluster-only",
        _rule_from_nested_cluster_group,
        branch="source-group-two-levels-inside-the-cluster-component",
    ),
    Allowed(
        "data-tier-ingress-from-cluster-only",
        _db_depends_on_an_unknown_urn,
        branch="dependency-outside-the-plan",
    ),
    Allowed(
        "data-tier-ingress-from-cluster-only",
        _rule_depends_on("cluster-sg"),
        branch="source-group-created-inside-the-cluster-component",
    ),
    Allowed(
        "eks-imdsv2-required",
        {"enableIMDSv2": False, "launchTemplate": {"id": "lt-0abc", "version": "1"}},
        MNG,
        branch="managed-group-with-its-own-launch-template",
    ),
    Allowed(
        "eks-nodes-private",
        _add(*NODE_GROUP_V2, {"nodeAssociatePublicIpAddress": False}),
        branch="self-managed-group-without-public-ip",
    ),
    Allowed(
        "eks-nodes-private",
        {"nodeAssociatePublicIpAddress": True},
        EKS,
        branch="no-default-group-so-the-switch-is-moot",
    ),
    Allowed(
        "data-store-alarms-in-production",
        _one_cache_node_unnumbered,
        branch="node-count-unset-means-one",
    ),
    Allowed(
        "data-store-alarms-in-production", {"identifier": "db"}, RDS, branch="alarms-watch-the-identifier"
    ),
    Allowed(
        "data-store-alarms-in-production",
        {"replicationGroupId": "cache"},
        CACHE,
        branch="alarms-watch-the-group",
    ),
    Allowed("monitoring-installed-in-production", _as_pod_monitor, branch="pod-monitor-scrapes"),
    Allowed("elasticache-replicas", {"numCacheClusters": 2.0}, CACHE, branch="exactly-the-minimum"),
    Allowed(
        "elasticache-auth-token",
        {"authToken": DELETE, "userGroupIds": ["ug-app"]},
        CACHE,
        branch="rbac-user-group",
    ),
    Allowed(
        "elasticache-transit-encryption",
        {"transitEncryptionMode": DELETE},
        CACHE,
        branch="mode-unset-is-required",
    ),
    Allowed(
        "elasticache-replicas",
        {"numCacheClusters": DELETE, "replicasPerNodeGroup": 2.0},
        CACHE,
        branch="cluster-mode",
    ),
    Allowed("rds-force-ssl", {"parameters.0.value": "1.0"}, RDS_PARAMS, branch="float-one"),
    Allowed("rds-force-ssl", {"parameters.0.value": "true"}, RDS_PARAMS, branch="true"),
    Allowed(
        "rds-no-plaintext-password",
        {"manageMasterUserPassword": DELETE, "password": "[secret]"},
        RDS,
        branch="password-as-a-secret",
    ),
    Allowed(
        "rds-no-plaintext-password",
        {"manageMasterUserPassword": DELETE, "passwordWo": "[secret]"},
        RDS,
        branch="write-only-password",
    ),
    Allowed(
        "elasticache-replication-group-only",
        _add(*CACHE_NODE, {"engine": "redis", "replicationGroupId": "cache", "numCacheNodes": 1.0}),
        branch="member-of-a-replication-group",
    ),
    Allowed(
        "elasticache-replication-group-only",
        _add(*CACHE_NODE, {"engine": "memcached", "numCacheNodes": 1.0}),
        branch="memcached",
    ),
    Allowed("ecr-lifecycle-policy", _lifecycle_names_the_repository_only, branch="names-the-repository"),
    Allowed(
        "ecr-lifecycle-policy",
        {"repository": "another-repository"},
        LIFECYCLE,
        branch="depends-on-the-repository-under-another-name",
    ),
    Allowed(
        "iam-no-wildcard-actions",
        {"policy": _policy_json({"Effect": "Allow", "Action": "*", "Resource": "*"})},
        ("aws:iam/role:Role", "app-role"),
        branch="a-role-has-no-policy-document-of-its-own",
    ),
    Allowed("sg-no-public-ingress", _legacy_open_rule("egress"), branch="legacy-egress-rule"),
    Allowed(
        "data-tier-ingress-from-cluster-only",
        _legacy_rule_from_cluster_group,
        branch="legacy-rule-from-the-cluster-group",
    ),
    Allowed(
        "data-tier-ingress-from-cluster-only",
        _db_waits_for_a_load_balancer_rule,
        branch="dependency-that-is-not-a-security-group",
    ),
]
