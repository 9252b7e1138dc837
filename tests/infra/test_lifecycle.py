"""The program across change, not at one moment: what a later deploy, upgrade or rollback would do to
what the previous one left, judged by ``stacks diff`` on plans whose state holds what the providers
report (docs/offline-plan.md, "The lifecycle sequence").

One sequence on staging, each step planned once in process (a module fixture):
commit A → commit B (same version) → the providers move RDS's minor and EKS's platform version →
kubernetesVersion raised → instance types changed → roll back to A's build.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from components.cluster_settings import KUBERNETES_VERSIONS
from components.images import build_tag
from infra.config import PROJECT
from policy.stack import DELETION_PROTECTION, STATEFUL
from stacks.diff import PlanDiff, diff_plans, render, warnings
from stacks.lifecycle import plan_at, refreshed, with_section
from stacks.plan import load_config
from tests.infra.harness import Captured, run_stack

SHA_A = "a" * 40
SHA_B = "b" * 40
SHA_LATER = "c" * 40
IMAGE = "docker-build:index:Image"
RDS = "aws:rds/instance:Instance"
CACHE = "aws:elasticache/replicationGroup:ReplicationGroup"
EKS = "eks:index:Cluster"
NODE_GROUP = "eks:index:ManagedNodeGroup"
ADDON = "aws:eks/addon:Addon"
BEFORE, AFTER = KUBERNETES_VERSIONS[-2], KUBERNETES_VERSIONS[-1]

Plan = dict[str, Any]


@pytest.fixture(scope="module")
def production() -> Captured:
    return run_stack("production")


@pytest.fixture(scope="module")
def sequence() -> dict[str, Plan]:
    values, config = load_config("staging")
    base = with_section(values, "cluster", kubernetesVersion=BEFORE)
    raised = with_section(base, "cluster", kubernetesVersion=AFTER)
    groups = copy.deepcopy(raised[f"{PROJECT}:cluster"]["nodeGroups"])
    groups[0]["instanceTypes"] = ["m7i.large", "m7a.large"]
    resized = with_section(raised, "cluster", nodeGroups=groups)
    rollback = with_section(resized, "images", deployBuild=build_tag(config.app.version, SHA_A))
    a = plan_at("staging", base, SHA_A)
    b = plan_at("staging", base, SHA_B)
    return {
        "A": a,
        "B": b,
        # What the state holds once RDS has applied a minor upgrade and EKS a new platform version.
        "B refreshed": refreshed(
            refreshed(b, RDS, {"engineVersion": "17.7"}), EKS, {"platformVersion": "eks.9"}
        ),
        "raised": plan_at("staging", raised, SHA_B),
        "resized": plan_at("staging", resized, SHA_B),
        # Rolled back from a later checkout: nothing of it may be built.
        "rollback": plan_at("staging", rollback, SHA_LATER),
    }


def entries(plan: Plan, type_: str) -> list[dict[str, Any]]:
    return [r for r in plan["resources"] if r["type"] == type_]


def changed_types(diff: PlanDiff) -> set[str]:
    return {d.type for d in diff.changed}


def test_a_second_commit_of_one_version_pushes_only_new_tags(sequence: dict[str, Plan]) -> None:
    a, b = sequence["A"], sequence["B"]
    diff = diff_plans(a, b)
    tags_a = {t for r in entries(a, IMAGE) for t in r["props"]["tags"]}
    tags_b = {t for r in entries(b, IMAGE) for t in r["props"]["tags"]}
    assert len(tags_a) == len(tags_b) == 3 and not tags_a & tags_b
    assert warnings(diff) == []
    assert not diff.added and not diff.removed
    assert not any(d.replaces for d in diff.changed if d.stateful)
    # The new digests reach the workloads (and a new migrations Job), nothing else moves.
    assert IMAGE in changed_types(diff) and "kubernetes:apps/v1:Deployment" in changed_types(diff)
    assert changed_types(diff) <= {IMAGE, "kubernetes:apps/v1:Deployment", "kubernetes:batch/v1:Job"}


def test_provider_side_upgrades_are_no_change_and_no_downgrade(sequence: dict[str, Plan]) -> None:
    """RDS moved to 17.7 by itself and EKS to a new platform version: the next deploy of the same program
    asks for neither a downgrade nor any change."""
    diff = diff_plans(sequence["B refreshed"], sequence["B"])
    assert diff.empty and warnings(diff) == []


def test_a_pinned_minor_would_have_asked_rds_for_a_downgrade(sequence: dict[str, Plan]) -> None:
    """The program before engine versions became major-only: 17.6 against a refreshed 17.7."""
    pinned = copy.deepcopy(sequence["B"])
    for instance in entries(pinned, RDS):
        instance["props"]["engineVersion"] = "17.6"
    diff = diff_plans(sequence["B refreshed"], pinned)
    assert [line for line in warnings(diff) if "downgrade" in line] == [
        f"**downgrade** of `{RDS}` **{entries(pinned, RDS)[0]['name']}**: `engineVersion` 17.7 → 17.6"
    ]
    assert render(diff).index("[!CAUTION]") < render(diff).index("to add")


def test_raising_kubernetes_version_moves_control_plane_nodes_and_addons_in_order(
    sequence: dict[str, Plan],
) -> None:
    before, after = sequence["B"], sequence["raised"]
    diff = diff_plans(before, after)
    versions = {d.urn: {c.path: (c.old, c.new) for c in d.changes} for d in diff.changed}
    (cluster,) = entries(after, EKS)
    assert versions[cluster["urn"]]["version"] == (BEFORE, AFTER)
    for group in entries(after, NODE_GROUP):
        assert versions[group["urn"]]["version"] == (BEFORE, AFTER)
    addons = entries(after, ADDON)
    assert len(addons) == 4
    for addon in addons:
        old, new = versions[addon["urn"]]["addonVersion"]
        assert BEFORE in old and AFTER in new
    assert warnings(diff) == [] and not any(d.replaces for d in diff.changed)
    # The engine updates in dependency order: control plane, then the node daemons, then the nodes,
    # then what schedules on them.
    by_name = {a["props"]["addonName"]: a for a in addons}
    for group in entries(after, NODE_GROUP):
        assert group["props"]["cluster"] == cluster["urn"], "a reference: the engine orders by it"
        assert {by_name["vpc-cni"]["urn"], by_name["kube-proxy"]["urn"]} <= set(group["dependsOn"])
        assert group["urn"] in by_name["coredns"]["dependsOn"]
        assert group["urn"] in by_name["aws-ebs-csi-driver"]["dependsOn"]


def test_new_instance_types_replace_the_node_group_create_before_delete(sequence: dict[str, Plan]) -> None:
    diff = diff_plans(sequence["raised"], sequence["resized"])
    (group,) = [d for d in diff.changed if d.type == NODE_GROUP]
    assert group.replaces and {c.path.split("[")[0] for c in group.changes} == {"instanceTypes"}
    assert warnings(diff) == []
    # Create-before-delete needs a name EKS has not given out: a prefix, never a fixed name.
    (entry,) = entries(sequence["resized"], NODE_GROUP)
    assert "nodeGroupName" not in entry["props"] and entry["props"]["nodeGroupNamePrefix"]


def test_rolling_back_redeploys_the_first_builds_digests_without_building(sequence: dict[str, Plan]) -> None:
    first, rollback = sequence["A"], sequence["rollback"]
    assert entries(rollback, IMAGE) == [], "a rollback builds (and pushes) nothing"
    assert rollback["outputs"]["imageDigests"] == first["outputs"]["imageDigests"]
    assert rollback["outputs"]["imageTag"] == first["outputs"]["imageTag"]
    images = {
        c["image"]
        for d in entries(rollback, "kubernetes:apps/v1:Deployment")
        for c in d["props"]["spec"]["template"]["spec"]["containers"]
    }
    assert images and all(
        any(image.endswith(digest) for digest in first["outputs"]["imageDigests"].values())
        for image in images
    )
    diff = diff_plans(sequence["resized"], rollback)
    assert {r["type"] for r in diff.removed} == {IMAGE} and warnings(diff) == []


def test_production_protects_every_stateful_resource(production: Captured) -> None:
    """Cluster, database, broker, keys, repositories and secrets: the engine refuses to delete or replace
    them, and the cluster refuses deletion itself."""
    stateful = [r for r in production.registrations if r.type in STATEFUL]
    assert {r.type for r in stateful} == set(STATEFUL)
    assert [r.name for r in stateful if not r.protect] == []
    for registration in stateful:
        if switch := DELETION_PROTECTION.get(registration.type):
            assert registration.inputs[switch] is True, registration.name


def _entry(type_: str, name: str, props: dict[str, Any], *, protect: bool = False) -> dict[str, Any]:
    return {
        "urn": f"urn:pulumi:s::p::{type_}::{name}",
        "type": type_,
        "name": name,
        "protect": protect,
        "props": props,
    }


def test_diff_warns_at_the_top_on_lost_state_and_downgrades() -> None:
    old = {
        "stack": "production",
        "resources": [
            _entry(RDS, "db", {"kmsKeyId": "k1", "engineVersion": "17"}, protect=True),
            _entry(CACHE, "cache", {"engineVersion": "8.1"}),
            _entry("aws:secretsmanager/secret:Secret", "llm", {"namePrefix": "a-"}),
            _entry("aws:ec2/securityGroup:SecurityGroup", "sg", {"description": "x"}),
            _entry(EKS, "eks", {"version": "1.35"}),
        ],
    }
    new = {
        "stack": "production",
        "resources": [
            _entry(RDS, "db", {"kmsKeyId": "k2", "engineVersion": "17"}, protect=True),
            _entry(CACHE, "cache", {"engineVersion": "8.0"}),
            _entry(EKS, "eks", {"version": "1.34"}),
        ],
    }
    diff = diff_plans(old, new)
    assert warnings(diff) == [
        "**delete** of `aws:secretsmanager/secret:Secret` **llm**",
        f"**replace** of `{CACHE}` **cache**",
        f"**downgrade** of `{CACHE}` **cache**: `engineVersion` 8.1 → 8.0",
        f"**replace** of protected `{RDS}` **db**",
        f"**downgrade** of `{EKS}` **eks**: `version` 1.35 → 1.34",
    ]
    text = render(diff)
    assert text.index("[!CAUTION]") < text.index("to add") < text.index("#### delete")
    # A security group is neither stateful nor protected: its delete is listed, not warned about.
    assert "**sg**" not in text.split("to add")[0]


def test_the_pr_comment_puts_the_cautions_first(sequence: dict[str, Plan]) -> None:
    """The PR comment is rendered on the trusted side from preview.json: the cautions travel as data and
    come first in the stack's section, every string from the PR in a code span."""
    from stacks.comment import PreviewData, build_payload, render_stack

    pinned = copy.deepcopy(sequence["B"])
    for instance in entries(pinned, RDS):
        instance["props"]["engineVersion"] = "17.6"
    payload = build_payload(
        diff_plans(sequence["B refreshed"], pinned), None, pr=1, head_sha=SHA_B, stack="staging"
    )
    head, _ = render_stack(PreviewData.model_validate(payload))
    text = "\n".join(head)
    assert "> [!CAUTION]" in text and text.index("[!CAUTION]") < text.index("to add")
    assert f"**downgrade** of `{RDS}`" in text and "`17.7` → `17.6`" in text
