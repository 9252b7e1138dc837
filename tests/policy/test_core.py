"""The policy factories and helpers of policy/core.py, called here at test time.

The pack builds its policies once, at import; these tests build their own (under names no real
policy has, removed again afterwards) so that what the factories record and hand to the engine is
checked exactly: the description the engine prints, the enforcement level, the metadata behind the
docs and SARIF, the fix appended to each finding, and the import-time refusals.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
from pulumi_policy import (
    EnforcementLevel,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from policy import core
from policy.core import (
    PolicyMetadata,
    Resource,
    StackResource,
    UnregisteredPolicyError,
    is_false,
    is_true,
    metadata,
    number,
    present,
    resource_policy,
    stack_policy,
)
from policy.settings import PolicySettings, stack_context
from tests.policy.support import validate_resource, validate_stack

BUCKET = "aws:s3/bucket:Bucket"
QUEUE = "aws:sqs/queue:Queue"


@pytest.fixture
def scratch_names() -> Iterator[list[str]]:
    """Names of the policies a test declares; their metadata is dropped afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        core._METADATA.pop(name, None)  # pyright: ignore[reportPrivateUsage]


def _public_buckets(r: Resource) -> Iterator[str]:
    if r.props.get("acl") == "public-read":
        yield f"Bucket {r.name} is public."
    if r.props.get("note"):
        yield f"Bucket {r.name}: {r.props['note']} Fix: a fix of its own."


def test_a_resource_policy_is_mandatory_describes_itself_and_records_its_metadata(
    scratch_names: list[str],
) -> None:
    scratch_names.append("test-public-buckets")
    policy = resource_policy(
        "test-public-buckets",
        types=[QUEUE, BUCKET],
        description="A public bucket leaks.",
        remediation="set acl=private.",
        check=_public_buckets,
        severity="high",
        controls=("CIS-AWS 2.1.4", "SOC2 CC6.1"),
        stack_key="storage.public",
    )
    assert isinstance(policy, ResourceValidationPolicy)
    assert policy.name == "test-public-buckets"
    assert policy.description == (
        "A public bucket leaks. Fix: set acl=private. (severity: high; controls: CIS-AWS 2.1.4, SOC2 CC6.1)"
    )
    assert policy.enforcement_level == EnforcementLevel.MANDATORY
    assert policy.remediation_steps == "set acl=private."
    assert metadata("test-public-buckets") == PolicyMetadata(
        "high",
        ("CIS-AWS 2.1.4", "SOC2 CC6.1"),
        "storage.public",
        (BUCKET, QUEUE),  # sorted, whatever order they were given in
        "A public bucket leaks.",
        "set acl=private.",
    )


def test_a_resource_policy_checks_only_its_types_and_appends_the_fix_once(scratch_names: list[str]) -> None:
    scratch_names.append("test-public-buckets-2")
    policy = resource_policy(
        "test-public-buckets-2",
        types=[BUCKET],
        description="d.",
        remediation="set acl=private.",
        check=_public_buckets,
        severity="low",
        controls=(),
    )
    public = {"acl": "public-read"}
    assert validate_resource(policy, BUCKET, public, name="logs") == [
        "Bucket logs is public. Fix: set acl=private."
    ]
    assert validate_resource(policy, QUEUE, public, name="logs") == []
    assert validate_resource(policy, BUCKET, {"note": "odd."}, name="logs") == [
        "Bucket logs: odd. Fix: a fix of its own."
    ]
    assert metadata("test-public-buckets-2").label() == "severity: low; controls: none mapped"


def _names_and_knob(
    resources: Sequence[StackResource], settings: PolicySettings
) -> Iterator[tuple[str, str | None]]:
    for r in resources:
        yield (
            f"{r.name} (parent {r.parent}, after {', '.join(r.dependencies) or 'nothing'}, "
            f"protect={r.protect}, {settings.stack})",
            r.urn,
        )
    yield "stack-wide", None


def test_a_stack_policy_sees_every_resource_with_its_edges_and_the_stacks_settings(
    scratch_names: list[str],
) -> None:
    scratch_names.append("test-stack-shape")
    policy = stack_policy(
        "test-stack-shape",
        description="The shape.",
        remediation="reshape.",
        check=_names_and_knob,
        severity="medium",
        controls=("PCI-DSS 1.2.1",),
        stack_key="policy:shape",
    )
    assert isinstance(policy, StackValidationPolicy)
    assert (policy.name, policy.enforcement_level, policy.remediation_steps) == (
        "test-stack-shape",
        EnforcementLevel.MANDATORY,
        "reshape.",
    )
    assert policy.description == "The shape. Fix: reshape. (severity: medium; controls: PCI-DSS 1.2.1)"
    assert metadata("test-stack-shape") == PolicyMetadata(
        "medium", ("PCI-DSS 1.2.1",), "policy:shape", (), "The shape.", "reshape."
    )
    parent, child = "urn:a::Parent::p", "urn:a::Child::c"
    plan = [
        {"urn": parent, "type": "t:P", "name": "p", "props": {}},
        {"urn": child, "type": "t:C", "name": "c", "props": {}, "parent": parent, "dependsOn": [parent]},
        {"urn": "urn:a::Kept::k", "type": "t:K", "name": "k", "props": {}, "protect": True},
    ]
    assert validate_stack(policy, plan, stack="staging") == [
        ("p (parent None, after nothing, protect=False, staging) Fix: reshape.", parent),
        (f"c (parent {parent}, after {parent}, protect=False, staging) Fix: reshape.", child),
        ("k (parent None, after nothing, protect=True, staging) Fix: reshape.", "urn:a::Kept::k"),
        ("stack-wide Fix: reshape.", None),
    ]


@pytest.mark.parametrize(
    ("severity", "controls", "error"),
    [
        (
            "severe",
            (),
            "policy 'test-refused': severity must be one of critical, high, medium, low, not 'severe'",
        ),
        (
            "low",
            ("SOC2",),
            "policy 'test-refused': control 'SOC2' must be '<framework> <id>' with a framework of "
            "CIS-AWS, CIS-EKS, PCI-DSS, SOC2",
        ),
        (
            "low",
            ("SOC2 CC6.1", "NIST AC-3"),
            "policy 'test-refused': control 'NIST AC-3' must be '<framework> <id>' with a framework of "
            "CIS-AWS, CIS-EKS, PCI-DSS, SOC2",
        ),
    ],
)
def test_a_bad_severity_or_control_is_refused_at_declaration(
    severity: str, controls: tuple[str, ...], error: str, scratch_names: list[str]
) -> None:
    scratch_names.append("test-refused")
    with pytest.raises(ValueError) as refused:
        stack_policy(
            "test-refused",
            description="d",
            remediation="r",
            check=_names_and_knob,
            severity=severity,  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
            controls=controls,
        )
    assert str(refused.value) == error
    assert "test-refused" not in core._METADATA  # pyright: ignore[reportPrivateUsage]


def test_a_second_policy_of_the_same_name_is_refused(scratch_names: list[str]) -> None:
    scratch_names.append("test-twice")

    def declare() -> StackValidationPolicy:
        return stack_policy(
            "test-twice", description="d", remediation="r", check=_names_and_knob, severity="low", controls=()
        )

    declare()
    with pytest.raises(ValueError) as refused:
        declare()
    assert str(refused.value) == "policy 'test-twice' is declared twice"


@pytest.mark.parametrize(
    ("value", "true", "false"),
    [
        (True, True, False),
        (False, False, True),
        ("true", True, False),
        ("TRUE", True, False),
        ("False", False, True),
        ("FALSE", False, True),
        ("yes", False, False),
        (1, False, False),
        (0, False, False),
        (None, False, False),
        ("", False, False),
    ],
)
def test_true_and_false_are_booleans_or_their_spelling_in_any_case(
    value: object, true: bool, false: bool
) -> None:
    assert (is_true(value), is_false(value)) == (true, false)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", False),
        ("x", True),
        ([], False),
        (["x"], True),
        ({}, False),
        ({"k": 1}, True),
        ((), False),
        (None, False),
        (0, True),
        (False, True),
        ("[secret]", True),
    ],
)
def test_present_means_a_non_empty_value(value: object, expected: bool) -> None:
    assert present(value) is expected


def _budget_knob(
    _resources: Sequence[StackResource], settings: PolicySettings
) -> Iterator[tuple[str, str | None]]:
    yield f"budget {settings.monthly_budget_usd}", None


def test_a_stack_policy_reads_the_engines_config_for_its_knobs(scratch_names: list[str]) -> None:
    scratch_names.append("test-stack-knob")
    policy = stack_policy(
        "test-stack-knob", description="d", remediation="r", check=_budget_knob, severity="low", controls=()
    )
    found: list[str] = []
    with stack_context("staging"):
        policy.validate(
            StackValidationArgs([], config={"monthlyBudgetUsd": 123.0}),
            lambda message, urn=None: found.append(message),
        )
    assert found == ["budget 123.0 Fix: r"]


def test_an_unregistered_policy_is_named_with_the_way_to_register_it() -> None:
    with pytest.raises(UnregisteredPolicyError) as missing:
        metadata("built-by-hand")
    assert str(missing.value) == (
        "policy 'built-by-hand' has no severity: build it with policy.core.resource_policy or "
        "stack_policy and pass severity= and controls="
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3, 3.0),
        (2.5, 2.5),
        ("2.5", 2.5),
        ("1e3", 1000.0),
        (True, None),
        ("ten", None),
        (None, None),
        ([1], None),
    ],
)
def test_number_reads_numbers_and_numeric_text_but_not_booleans(
    value: object, expected: float | None
) -> None:
    assert number(value) == expected
