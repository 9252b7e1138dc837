"""The KEDA policies on variants the one-change cases do not cover: every way a TriggerAuthentication
can take a credential from a Kubernetes Secret or the environment is refused, the secret-store way is
not; a ScaledObject's bounds must be ordered."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from tests.policy.keda_cases import SCALED_OBJECT, TRIGGER_AUTHENTICATION, keda_resources
from tests.policy.support import BY_NAME, violations

Plan = list[dict[str, Any]]
NO_PLAIN_SECRETS = "keda-trigger-auth-no-plain-secrets"
MAX_REPLICAS = "keda-scaledobject-max-replicas"


def props(plan: Plan, type_: str) -> dict[str, Any]:
    return next(r for r in plan if r["type"] == type_)["props"]


def messages(plan: Plan, policy: str) -> list[str]:
    """The findings without the remediation every one ends with."""
    return [message.split(" Fix: ")[0] for message, _ in violations(BY_NAME[policy], plan)]


def test_the_compliant_objects_pass_both() -> None:
    plan = keda_resources()
    assert messages(plan, NO_PLAIN_SECRETS) == []
    assert messages(plan, MAX_REPLICAS) == []


@pytest.mark.parametrize(
    ("field", "value", "where"),
    [
        (
            "env",
            [{"parameter": "password", "name": "REDIS_PASSWORD"}],
            "a container's environment (spec.env)",
        ),
        (
            "secretTargetRef",
            [{"parameter": "password", "name": "redis", "key": "token"}],
            "a Kubernetes Secret (spec.secretTargetRef)",
        ),
    ],
)
def test_a_secret_or_env_reference_is_refused(field: str, value: list[dict[str, str]], where: str) -> None:
    plan = keda_resources()
    props(plan, TRIGGER_AUTHENTICATION)["spec"][field] = value
    assert messages(plan, NO_PLAIN_SECRETS) == [
        f"TriggerAuthentication ai-agents/redis-auth reads credentials from {where}."
    ]


def test_static_aws_keys_from_a_secret_are_refused() -> None:
    plan = keda_resources()
    store = props(plan, TRIGGER_AUTHENTICATION)["spec"]["awsSecretManager"]
    del store["podIdentity"]
    store["credentials"] = {
        "accessKey": {"valueFrom": {"secretKeyRef": {"name": "aws", "key": "id"}}},
        "accessSecretKey": {"valueFrom": {"secretKeyRef": {"name": "aws", "key": "secret"}}},
    }
    assert messages(plan, NO_PLAIN_SECRETS) == [
        "TriggerAuthentication ai-agents/redis-auth reads credentials from a Kubernetes Secret "
        f"(spec.awsSecretManager.credentials.{key}.valueFrom.secretKeyRef)."
        for key in ("accessKey", "accessSecretKey")
    ]


@pytest.mark.parametrize("sequence", [list, tuple], ids=["list", "read-only-sequence"])
def test_a_secret_reference_inside_a_list_is_found_whatever_sequence_type_holds_it(
    sequence: Callable[[list[Any]], Sequence[Any]],
) -> None:
    """The engine hands lists to a policy as read-only sequence proxies, not as ``list``."""
    plan = keda_resources()
    store = props(plan, TRIGGER_AUTHENTICATION)["spec"]["awsSecretManager"]
    store["secrets"] = sequence(
        [
            {"parameter": "host", "name": "plain"},
            {"parameter": "password", "valueFrom": {"secretKeyRef": {"name": "redis", "key": "token"}}},
        ]
    )
    assert messages(plan, NO_PLAIN_SECRETS) == [
        "TriggerAuthentication ai-agents/redis-auth reads credentials from a Kubernetes Secret "
        "(spec.awsSecretManager.secrets.1.valueFrom.secretKeyRef)."
    ]


def test_a_cluster_trigger_authentication_is_held_to_the_same_rule() -> None:
    plan = copy.deepcopy(keda_resources())
    auth = next(r for r in plan if r["type"] == TRIGGER_AUTHENTICATION)
    auth["type"] = "kubernetes:keda.sh/v1alpha1:ClusterTriggerAuthentication"
    auth["props"]["kind"] = "ClusterTriggerAuthentication"
    auth["props"]["spec"]["env"] = [{"parameter": "password", "name": "REDIS_PASSWORD"}]
    assert messages(plan, NO_PLAIN_SECRETS) == [
        "ClusterTriggerAuthentication ai-agents/redis-auth reads credentials from a container's "
        "environment (spec.env)."
    ]


def test_empty_lists_are_not_a_reference() -> None:
    plan = keda_resources()
    spec = props(plan, TRIGGER_AUTHENTICATION)["spec"]
    spec["env"], spec["secretTargetRef"] = [], []
    assert messages(plan, NO_PLAIN_SECRETS) == []


def test_bounds_must_be_ordered() -> None:
    plan = keda_resources()
    props(plan, SCALED_OBJECT)["spec"]["maxReplicaCount"] = 2.0
    assert messages(plan, MAX_REPLICAS) == [
        "ScaledObject ai-agents/worker has maxReplicaCount 2 below minReplicaCount 3."
    ]


@pytest.mark.parametrize(
    ("least", "most"),
    [(3.0, 3.0), (None, 0.0), (None, 5.0)],
    ids=["equal-bounds", "paused-at-zero-without-a-minimum", "no-minimum"],
)
def test_ordered_bounds_pass_an_absent_minimum_being_zero(least: float | None, most: float) -> None:
    plan = keda_resources()
    spec = props(plan, SCALED_OBJECT)["spec"]
    spec["maxReplicaCount"] = most
    if least is None:
        del spec["minReplicaCount"]
    else:
        spec["minReplicaCount"] = least
    assert messages(plan, MAX_REPLICAS) == []
