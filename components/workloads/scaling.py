"""How the service scales, and how far: the autoscalers' behaviour, KEDA's ScaledObject for the workers
(queue length, read with the Redis AUTH token from Secrets Manager), and the namespace's ResourceQuota and
LimitRange, computed from the same replica bounds and per-pod resources the Deployments declare, so the
quota always admits the stack's own largest scale-out and nothing much beyond it.

Pure builders: no resource is declared here (component.py declares them).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.workloads.contract import BROKER_DATABASE, BROKER_QUEUE, Component
from components.workloads.pods import POD_RESOURCES, PodResources
from components.workloads.settings import AppSettings, HpaSettings, QueueScalingSettings

KEDA_API = "keda.sh/v1alpha1"
# The TriggerAuthentication's name, and the scaler parameter the token is handed to.
REDIS_AUTH = "redis-auth"
# A Deployment rollout surges by this much over the current replica count (component.py's strategy).
ROLLOUT_SURGE_PERCENT = 25
# The migrations Job runs one pod at a time (parallelism 1).
MIGRATIONS_PODS = 1
# Room above the computed maximum for a `kubectl debug` pod or a re-run Job; small enough that a
# scale-out well past the configured bounds (+50 %) is refused.
QUOTA_HEADROOM_PERCENT = 10


# --- autoscaler behaviour --------------------------------------------------------------------------


def behavior_manifest(hpa: HpaSettings) -> dict[str, Any]:
    """Scale up by the larger of +N % and +N pods per period, down by the smaller of -N pods and -N %:
    the object a ScaledObject carries, and (through :func:`behavior_args`) the API's HPA."""
    period = hpa.policy_period_seconds
    return {
        "scaleUp": {
            "stabilizationWindowSeconds": hpa.scale_up_stabilization_seconds,
            "selectPolicy": "Max",
            "policies": [
                {"type": "Percent", "value": hpa.scale_up_percent, "periodSeconds": period},
                {"type": "Pods", "value": hpa.scale_up_pods, "periodSeconds": period},
            ],
        },
        "scaleDown": {
            "stabilizationWindowSeconds": hpa.scale_down_stabilization_seconds,
            "selectPolicy": "Min",
            "policies": [
                {"type": "Pods", "value": hpa.scale_down_pods, "periodSeconds": period},
                {"type": "Percent", "value": hpa.scale_down_percent, "periodSeconds": period},
            ],
        },
    }


def _scaling_rules(rules: Mapping[str, Any]) -> k8s.autoscaling.v2.HPAScalingRulesArgs:
    return k8s.autoscaling.v2.HPAScalingRulesArgs(
        stabilization_window_seconds=rules["stabilizationWindowSeconds"],
        select_policy=rules["selectPolicy"],
        policies=[
            k8s.autoscaling.v2.HPAScalingPolicyArgs(
                type=p["type"], value=p["value"], period_seconds=p["periodSeconds"]
            )
            for p in rules["policies"]
        ],
    )


def behavior_args(hpa: HpaSettings) -> k8s.autoscaling.v2.HorizontalPodAutoscalerBehaviorArgs:
    """:func:`behavior_manifest` as the typed args of a HorizontalPodAutoscaler (one source for both)."""
    manifest = behavior_manifest(hpa)
    return k8s.autoscaling.v2.HorizontalPodAutoscalerBehaviorArgs(
        scale_up=_scaling_rules(manifest["scaleUp"]), scale_down=_scaling_rules(manifest["scaleDown"])
    )


# --- KEDA ------------------------------------------------------------------------------------------


def trigger_authentication_spec(secret_arn: str, region: str) -> dict[str, Any]:
    """The Redis AUTH token straight from Secrets Manager, with the KEDA operator's own IRSA role
    (``podIdentity`` aws, identity owner keda): no Kubernetes Secret ever holds it."""
    return {
        "awsSecretManager": {
            "podIdentity": {"provider": "aws"},
            "region": region,
            # The secret string is the token itself (components/secrets.py), so no secretKey.
            "secrets": [{"parameter": "password", "name": secret_arn}],
        }
    }


def queue_trigger(address: str, queue: QueueScalingSettings) -> dict[str, Any]:
    """The worker queue's length over TLS, authenticated by :data:`REDIS_AUTH`."""
    return {
        "type": "redis",
        "metadata": {
            "address": address,
            "enableTLS": "true",
            "databaseIndex": str(BROKER_DATABASE),
            "listName": BROKER_QUEUE,
            "listLength": str(queue.target_per_replica),
        },
        "authenticationRef": {"name": REDIS_AUTH},
    }


def scaled_object_spec(deployment: str, address: str, settings: AppSettings) -> dict[str, Any]:
    """KEDA owns the worker's HorizontalPodAutoscaler (``keda-hpa-<deployment>``): queue length first,
    CPU as a second trigger (the HPA takes the larger replica count of the two)."""
    hpa, queue = settings.worker, settings.queue_scaling
    triggers: list[dict[str, Any]] = [queue_trigger(address, queue)]
    if queue.cpu_trigger:
        triggers.append(
            {"type": "cpu", "metricType": "Utilization", "metadata": {"value": str(hpa.target_cpu_percent)}}
        )
    return {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
        "minReplicaCount": hpa.min_replicas,
        "maxReplicaCount": hpa.max_replicas,
        "pollingInterval": queue.polling_interval_seconds,
        "cooldownPeriod": queue.cooldown_period_seconds,
        "advanced": {"horizontalPodAutoscalerConfig": {"behavior": behavior_manifest(hpa)}},
        "triggers": triggers,
    }


def redis_address(host: pulumi.Input[str], port: pulumi.Input[int]) -> pulumi.Output[str]:
    return pulumi.Output.concat(host, ":", pulumi.Output.from_input(port).apply(str))


# --- ResourceQuota and LimitRange ------------------------------------------------------------------

_CPU = re.compile(r"^(\d+)(m?)$")
_MEMORY = re.compile(r"^(\d+)(Mi|Gi)$")


def millicores(quantity: str) -> int:
    match = _CPU.fullmatch(quantity)
    if not match:
        raise ValueError(f"CPU quantity {quantity!r} is not whole cores or millicores")
    value, unit = int(match[1]), match[2]
    return value if unit == "m" else value * 1000


def mebibytes(quantity: str) -> int:
    match = _MEMORY.fullmatch(quantity)
    if not match:
        raise ValueError(f"memory quantity {quantity!r} is not in Mi or Gi")
    value, unit = int(match[1]), match[2]
    return value * 1024 if unit == "Gi" else value


@dataclass(frozen=True)
class Totals:
    """Pods and their summed requests and limits (millicores, MiB)."""

    pods: int
    cpu: int
    memory: int
    cpu_limit: int
    memory_limit: int

    def __add__(self, other: Totals) -> Totals:
        return Totals(
            self.pods + other.pods,
            self.cpu + other.cpu,
            self.memory + other.memory,
            self.cpu_limit + other.cpu_limit,
            self.memory_limit + other.memory_limit,
        )

    def fits_in(self, quota: Totals) -> bool:
        mine, theirs = vars(self), vars(quota)
        return all(mine[key] <= theirs[key] for key in mine)


def pods_of(component: Component, count: int) -> Totals:
    r: PodResources = POD_RESOURCES[component]
    return Totals(
        count,
        count * millicores(r.cpu),
        count * mebibytes(r.memory),
        count * millicores(r.cpu_limit),
        count * mebibytes(r.memory_limit),
    )


def with_surge(replicas: int) -> int:
    """Pods during a rollout at ``replicas``: the surge rounds up, as Kubernetes rounds maxSurge."""
    return replicas + math.ceil(replicas * ROLLOUT_SURGE_PERCENT / 100)


def largest_scale_out(settings: AppSettings) -> Totals:
    """Both Deployments at their maximum, mid-rollout, while the migrations Job runs."""
    return (
        pods_of("api", with_surge(settings.api.max_replicas))
        + pods_of("worker", with_surge(settings.worker.max_replicas))
        + pods_of("migrations", MIGRATIONS_PODS)
    )


def quota_totals(settings: AppSettings) -> Totals:
    need = largest_scale_out(settings)

    def room(value: int) -> int:
        return math.ceil(value * (100 + QUOTA_HEADROOM_PERCENT) / 100)

    return Totals(*(room(value) for value in vars(need).values()))


def quota_hard(settings: AppSettings) -> dict[str, str]:
    quota = quota_totals(settings)
    return {
        "pods": str(quota.pods),
        "requests.cpu": f"{quota.cpu}m",
        "requests.memory": f"{quota.memory}Mi",
        "limits.cpu": f"{quota.cpu_limit}m",
        "limits.memory": f"{quota.memory_limit}Mi",
    }


def limit_range_item() -> k8s.core.v1.LimitRangeItemArgs:
    """No container above the largest one declared; a container declaring nothing (a debug pod) gets
    the smallest one's requests and limits rather than none, so the quota can account for it."""
    specs: Mapping[Component, PodResources] = POD_RESOURCES
    largest = max(specs.values(), key=lambda r: millicores(r.cpu_limit))
    biggest_memory = max(specs.values(), key=lambda r: mebibytes(r.memory_limit))
    smallest = min(specs.values(), key=lambda r: millicores(r.cpu_limit))
    return k8s.core.v1.LimitRangeItemArgs(
        type="Container",
        max={"cpu": largest.cpu_limit, "memory": biggest_memory.memory_limit},
        default={"cpu": smallest.cpu_limit, "memory": smallest.memory_limit},
        default_request={"cpu": smallest.cpu, "memory": smallest.memory},
    )
