"""production-stateful-protected beyond its one fixture: the EKS cluster's own deletion protection, and
stacks that are not production."""

from __future__ import annotations

import copy

from policy.stack import STATEFUL
from tests.policy.cases import EKS, compliant_plan, find
from tests.policy.support import BY_NAME, fix, violations

POLICY = BY_NAME["production-stateful-protected"]


def test_a_cluster_without_deletion_protection_is_reported() -> None:
    plan = copy.deepcopy(compliant_plan())
    cluster = find(plan, *EKS)
    del cluster["props"]["deletionProtection"]
    assert violations(POLICY, plan, stack="production") == [
        (
            fix(POLICY, "eks:index:Cluster cluster has no deletion protection (deletionProtection)."),
            cluster["urn"],
        )
    ]


def test_every_stateful_type_must_be_protected() -> None:
    plan = copy.deepcopy(compliant_plan())
    for entry in plan:
        entry["protect"] = False
    reported = {urn for _, urn in violations(POLICY, plan, stack="production")}
    stateful = {e["urn"] for e in plan if e["type"] in STATEFUL}
    assert reported == stateful
    assert {e["type"] for e in plan if e["urn"] in reported} == set(STATEFUL)


def test_staging_may_tear_down_what_it_holds() -> None:
    plan = copy.deepcopy(compliant_plan())
    for entry in plan:
        entry["protect"] = False
    assert violations(POLICY, plan, stack="staging") == []
