"""KEDA's objects in the compliant plan, and one insecure change per KEDA policy.

Kept apart from cases.py (which includes both): the objects are shaped as
components/workloads/scaling.py declares them.
"""

from __future__ import annotations

from typing import Any

from tests.policy.gateway_cases import entry

KEDA_API = "keda.sh/v1alpha1"
SCALED_OBJECT = f"kubernetes:{KEDA_API}:ScaledObject"
TRIGGER_AUTHENTICATION = f"kubernetes:{KEDA_API}:TriggerAuthentication"
SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:ai-agents/production/redis-auth-abcdef"


def keda_resources() -> list[dict[str, Any]]:
    auth = {
        "awsSecretManager": {
            "podIdentity": {"provider": "aws"},
            "region": "eu-west-1",
            "secrets": [{"parameter": "password", "name": SECRET_ARN}],
        }
    }
    scaled = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "worker"},
        "minReplicaCount": 3.0,
        "maxReplicaCount": 10.0,
        "pollingInterval": 15.0,
        "cooldownPeriod": 300.0,
        "triggers": [
            {
                "type": "redis",
                "metadata": {
                    "address": "master.cache.example.com:6379",
                    "enableTLS": "true",
                    "listName": "enhancements",
                    "listLength": "32",
                },
                "authenticationRef": {"name": "redis-auth"},
            }
        ],
    }
    return [
        entry("redis-auth", TRIGGER_AUTHENTICATION, "TriggerAuthentication", KEDA_API, auth, "ai-agents"),
        entry("worker", SCALED_OBJECT, "ScaledObject", KEDA_API, scaled, "ai-agents"),
    ]


# Case fields (tests/policy/cases.py Case): policy, target, change, detail, and optionally also.
KEDA_CASES: list[dict[str, Any]] = [
    {
        "policy": "keda-trigger-auth-no-plain-secrets",
        "target": (TRIGGER_AUTHENTICATION, "redis-auth"),
        "change": {"spec.secretTargetRef": [{"parameter": "password", "name": "redis", "key": "token"}]},
        "detail": "TriggerAuthentication ai-agents/redis-auth reads credentials from a Kubernetes Secret "
        "(spec.secretTargetRef).",
    },
    {
        "policy": "keda-scaledobject-max-replicas",
        "target": (SCALED_OBJECT, "worker"),
        "change": {"spec.maxReplicaCount": None},
        "detail": "ScaledObject ai-agents/worker has no maxReplicaCount (KEDA's default is 100).",
    },
]
