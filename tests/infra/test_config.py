"""The typed stack config: both stack files are valid, and every rejection names its key in one line."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from components.cluster_settings import KUBERNETES_VERSIONS
from infra.config import (
    PROJECT,
    ConfigError,
    StackConfig,
    load_stack_file,
    parse_stack_config,
    read_stack_file,
)


def _with(stack: str, dotted: str, value: Any) -> dict[str, Any]:
    """The stack file's config with ``section.key.sub`` set to ``value`` (``...`` deletes it)."""
    config = copy.deepcopy(read_stack_file(stack))
    section, *path = dotted.split(".")
    full = f"{PROJECT}:{section}"
    if not path:
        if value is ...:
            del config[full]
        else:
            config[full] = value
        return config
    node: Any = config.setdefault(full, {})
    for part in path[:-1]:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    if value is ...:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return config


def _error(stack: str, dotted: str, value: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_stack_config(_with(stack, dotted, value), f"Pulumi.{stack}.yaml")
    return str(caught.value)


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_both_stack_files_are_valid(stack: str) -> None:
    config = load_stack_file(stack)
    assert config.environment == stack
    assert config.cluster.node_groups


def test_stacks_differ_only_through_their_files() -> None:
    staging, production = load_stack_file("staging"), load_stack_file("production")
    assert staging.is_production is False
    assert production.is_production is True
    assert production.database.multi_az and not staging.database.multi_az


PRODUCTION_RULES = [
    ("database.multiAz", False, "must be true in production"),
    ("database.deletionProtection", False, "must be true in production"),
    ("database.backupRetentionDays", 7, "must be at least 14 in production"),
    ("network.natGateways", "single", "must be 'perAz' in production"),
    (
        "platform.clusterIssuer",
        "letsencrypt-staging",
        "must be 'letsencrypt-production' in production (staging certificates are untrusted)",
    ),
    ("registry.forceDelete", True, "must be false in production"),
    ("monitoring.enabled", False, "must be true in production"),
    ("app.api.minReplicas", 1, "must be at least 2 in production"),
    ("app.worker.minReplicas", 1, "must be at least 2 in production"),
]


@pytest.mark.parametrize(("key", "value", "rule"), PRODUCTION_RULES, ids=[r[0] for r in PRODUCTION_RULES])
def test_production_rules_name_the_key(key: str, value: Any, rule: str) -> None:
    assert _error("production", key, value) == f"Pulumi.production.yaml: {PROJECT}:{key}: {rule}"


@pytest.mark.parametrize(("key", "value", "rule"), PRODUCTION_RULES, ids=[r[0] for r in PRODUCTION_RULES])
def test_production_rules_do_not_bind_staging(key: str, value: Any, rule: str) -> None:
    parse_stack_config(_with("staging", key, value), "Pulumi.staging.yaml")


FIELD_RULES = [
    ("bogus", 1, "bogus", "unknown key"),
    ("database.multiAZ", True, "database.multiAZ", "unknown key"),
    ("network.vpcCidr", "10.0.0.0/33", "network.vpcCidr", "'10.0.0.0/33' is not a valid CIDR block"),
    (
        "network.vpcCidr",
        "10.0.0.1/16",
        "network.vpcCidr",
        "'10.0.0.1/16' has host bits set; the block is 10.0.0.0/16",
    ),
    ("network.vpcCidr", "10.0.0.0/24", "network.vpcCidr", "must be /20 or larger to hold 6 subnets"),
    ("network.azCount", "three", "network.azCount", "Input should be a valid integer"),
    ("network.azCount", 1, "network.azCount", "Input should be greater than or equal to 2"),
    ("network.natGateways", "none", "network.natGateways", "Input should be 'perAz' or 'single'"),
    (
        "cluster.publicAccessCidrs",
        ["0.0.0.0/0"],
        "cluster.publicAccessCidrs",
        "0.0.0.0/0 opens the Kubernetes API to the internet; list your admin CIDRs",
    ),
    (
        "cluster.kubernetesVersion",
        "1.20",
        "cluster.kubernetesVersion",
        f"must be one of {', '.join(KUBERNETES_VERSIONS)} (got '1.20')",
    ),
    ("cluster.adminRoleArns", ["admin"], "cluster.adminRoleArns", "'admin' is not an IAM role ARN"),
    (
        "cluster.adminRoleArns",
        ["arn:aws:iam::111122223333:role/ai-agents-deploy-staging"],
        "cluster.adminRoleArns",
        "'arn:aws:iam::111122223333:role/ai-agents-deploy-staging' is a deploy role, which creates the cluster "
        "and gets its admin entry from EKS already (a second entry fails with 409); list only other admins",
    ),
    ("cluster.upgradePolicy", "NEVER", "cluster.upgradePolicy", "Input should be 'STANDARD' or 'EXTENDED'"),
    ("cluster.nodeGroups.0.minSize", 9, "cluster.nodeGroups.0", "needs minSize <= desiredSize <= maxSize"),
    (
        "cluster.nodeGroups.0.instanceTypes",
        ["large"],
        "cluster.nodeGroups.0.instanceTypes",
        "'large' is not an EC2 instance type such as 'm6i.large'",
    ),
    (
        "database.allocatedStorageGib",
        200,
        "database.maxAllocatedStorageGib",
        "must be at least database.allocatedStorageGib",
    ),
    (
        "database.backupRetentionDays",
        3,
        "database.backupRetentionDays",
        "Input should be greater than or equal to 7",
    ),
    (
        "database.engineVersion",
        "16.4",
        "database.engineVersion",
        "a major version only: 17 (got '16.4'; RDS upgrades minors itself)",
    ),
    ("cache.replicas", 0, "cache.replicas", "Input should be greater than or equal to 1"),
    ("app.version", "latest", "app.version", "'latest' is not a release; use a version such as 1.4.2"),
    ("app.corsOrigins", ["*"], "app.corsOrigins", "'*' must be an https:// origin (no wildcard)"),
    ("app.llmBaseUrl", "http://llm.internal", "app.llmBaseUrl", "String should match pattern '^https://'"),
    ("app.worker.minReplicas", 12, "app.worker", "needs minReplicas <= maxReplicas"),
    ("cluster", ..., "cluster", "is required"),
]


@pytest.mark.parametrize(
    ("key", "value", "where", "rule"), FIELD_RULES, ids=[f"{r[0]}={r[1]!r}" for r in FIELD_RULES]
)
def test_field_rules_name_the_key(key: str, value: Any, where: str, rule: str) -> None:
    assert _error("staging", key, value).startswith(f"Pulumi.staging.yaml: {PROJECT}:{where}: {rule}")


def test_a_misspelt_section_reports_the_unknown_key_first() -> None:
    config = read_stack_file("staging")
    config[f"{PROJECT}:clustr"] = config.pop(f"{PROJECT}:cluster")
    with pytest.raises(ConfigError, match=r"ai-agents-platform:clustr: unknown key \(and 1 more\)$"):
        parse_stack_config(config, "Pulumi.staging.yaml")


def test_structured_config_arrives_as_json_text_from_pulumi() -> None:
    config = read_stack_file("staging")
    as_engine_passes_it = {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}
    assert parse_stack_config(as_engine_passes_it, "x") == parse_stack_config(config, "x")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "Pulumi.candidate.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_secrets_in_the_stack_file_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "config:\n  ai-agents-platform:llmKey:\n    secure: v1:abc\n")
    with pytest.raises(ConfigError) as caught:
        read_stack_file("candidate", path)
    assert str(caught.value) == (
        "Pulumi.candidate.yaml: ai-agents-platform:llmKey: "
        "secrets do not belong in stack config; put them in AWS Secrets Manager"
    )


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "config:\n  a: [1, 2\n  b: 3\n")
    with pytest.raises(ConfigError, match=r"^Pulumi.candidate.yaml: is not valid YAML at line \d+$"):
        read_stack_file("candidate", path)


def test_a_file_without_config_mapping_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "config: [1, 2]\n")
    with pytest.raises(ConfigError, match="must be a mapping with a 'config:' mapping"):
        read_stack_file("candidate", path)


def test_a_missing_stack_names_the_known_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        read_stack_file("qa")
    assert str(caught.value) == "Pulumi.qa.yaml: no such stack file (stacks: production, staging)"


def test_provider_namespaces_are_left_to_their_providers() -> None:
    config = {**read_stack_file("staging"), "aws:region": "us-east-1"}
    assert isinstance(parse_stack_config(config, "x"), StackConfig)
