"""How the service scales, under mocks for both stacks: KEDA (chart, IRSA to the one secret, its
namespace's policies), the worker's ScaledObject on the real queue with the token from Secrets Manager,
the API HPA's behaviour, and a namespace quota that admits the stack's own largest scale-out and no more.
"""

from __future__ import annotations

import copy
import json
import math
import re
from typing import Any

import pytest

from app.settings import Settings
from app.worker.config import celery_config
from app.worker.dispatch import QUEUE
from components.keda import KEDA_NAMESPACE, OPERATOR_SERVICE_ACCOUNT
from components.workloads.scaling import ROLLOUT_SURGE_PERCENT, quota_totals, with_surge
from infra.config import StackConfig
from tests.infra.harness import Captured
from tests.infra.k8s_fixtures import (
    BACKENDS,
    DEPLOYMENT,
    HPA,
    JOB,
    NAMESPACE,
    NETWORK_POLICY,
    RELEASE,
    SECRETS_KEY_ARN,
    VPC_CIDR,
    compose,
    pod_spec,
    stack_config,
)
from tests.infra.test_manifests import crd_schema_errors

SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
TRIGGER_AUTHENTICATION = "kubernetes:keda.sh/v1alpha1:TriggerAuthentication"
QUOTA = "kubernetes:core/v1:ResourceQuota"
LIMIT_RANGE = "kubernetes:core/v1:LimitRange"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"


@pytest.fixture(scope="module", params=["staging", "production"])
def stack(request: pytest.FixtureRequest) -> tuple[StackConfig, Captured]:
    config = stack_config(str(request.param))
    return config, compose(config)


def keda_resource(captured: Captured, type_: str) -> dict[str, Any]:
    (one,) = [captured.inputs(type_, r.name) for r in captured.of_type(type_)]
    return one


# --- the worker's ScaledObject ----------------------------------------------------------------------


def test_the_worker_scales_on_the_queue_it_consumes_over_tls(stack: tuple[StackConfig, Captured]) -> None:
    config, captured = stack
    spec = keda_resource(captured, SCALED_OBJECT)["spec"]
    worker, queue = config.app.worker, config.app.queue_scaling
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "worker"}
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (worker.min_replicas, worker.max_replicas)
    assert (spec["pollingInterval"], spec["cooldownPeriod"]) == (
        queue.polling_interval_seconds,
        queue.cooldown_period_seconds,
    )
    redis = spec["triggers"][0]
    assert redis["type"] == "redis"
    # The list the app publishes to and the database the app's broker URL names.
    assert redis["metadata"] == {
        "address": f"{BACKENDS.redis_host}:{BACKENDS.redis_port}",
        "enableTLS": "true",
        "databaseIndex": str(Settings.model_fields["redis_db"].default),
        "listName": QUEUE,
        "listLength": str(queue.target_per_replica),
    }
    auth = keda_resource(captured, TRIGGER_AUTHENTICATION)
    assert redis["authenticationRef"] == {"name": auth["metadata"]["name"]}
    assert spec["triggers"][1] == {
        "type": "cpu",
        "metricType": "Utilization",
        "metadata": {"value": str(worker.target_cpu_percent)},
    }


def test_the_app_publishes_to_one_list_without_priorities() -> None:
    """Celery's Redis transport adds suffixed lists per priority step only when told to: it is not."""
    options = celery_config(Settings.model_construct(), "rediss://broker:6379/0")["broker_transport_options"]
    assert "priority_steps" not in options and "queue_order_strategy" not in options


def test_the_token_comes_from_secrets_manager_through_the_operators_role(
    stack: tuple[StackConfig, Captured],
) -> None:
    config, captured = stack
    spec = keda_resource(captured, TRIGGER_AUTHENTICATION)["spec"]
    assert spec == {
        "awsSecretManager": {
            "podIdentity": {"provider": "aws"},
            "region": config.aws.region,
            "secrets": [{"parameter": "password", "name": BACKENDS.redis_auth_secret_arn}],
        }
    }


def test_keda_custom_resources_wait_for_the_chart(stack: tuple[StackConfig, Captured]) -> None:
    _, captured = stack
    release = next(r for r in captured.of_type(RELEASE) if r.inputs.get("chart") == "keda")
    for type_ in (SCALED_OBJECT, TRIGGER_AUTHENTICATION):
        (resource,) = captured.of_type(type_)
        assert release.urn in resource.depends_on


def test_only_keda_owns_the_workers_hpa(stack: tuple[StackConfig, Captured]) -> None:
    _, captured = stack
    targets = [captured.inputs(HPA, r.name)["spec"]["scaleTargetRef"]["name"] for r in captured.of_type(HPA)]
    assert "worker" not in targets


# --- autoscaler behaviour ---------------------------------------------------------------------------


def expected_behavior(hpa: Any) -> dict[str, Any]:
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


def test_the_api_hpa_grows_fast_and_shrinks_slowly(stack: tuple[StackConfig, Captured]) -> None:
    config, captured = stack
    behavior = captured.inputs(HPA, "app-api-hpa")["spec"]["behavior"]
    assert behavior == expected_behavior(config.app.api)
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 300
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] < 60


def test_keda_gives_the_workers_hpa_the_same_kind_of_behaviour(stack: tuple[StackConfig, Captured]) -> None:
    config, captured = stack
    spec = keda_resource(captured, SCALED_OBJECT)["spec"]
    assert spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"] == expected_behavior(
        config.app.worker
    )


# --- KEDA itself ------------------------------------------------------------------------------------


def test_keda_chart_and_images_are_pinned_with_irsa(stack: tuple[StackConfig, Captured]) -> None:
    config, captured = stack
    release = next(
        captured.inputs(RELEASE, r.name) for r in captured.of_type(RELEASE) if r.name == "keda-keda"
    )
    assert (release["chart"], release["version"]) == ("keda", config.keda.chart_version)
    assert release["repositoryOpts"]["repo"] == "https://kedacore.github.io/charts"
    values = release["values"]
    assert {values["image"][c]["tag"] for c in ("keda", "metricsApiServer", "webhooks")} == {
        config.keda.image_tag
    }
    role = captured.one(ROLE, "keda-keda-operator")
    assert values["podIdentity"]["aws"]["irsa"] == {
        "enabled": True,
        "roleArn": role.outputs["arn"],
        "stsRegionalEndpoints": "true",
    }
    for component in ("operator", "metricServer", "webhooks"):
        container = values["securityContext"][component]
        assert container["readOnlyRootFilesystem"] and not container["allowPrivilegeEscalation"]
        assert container["capabilities"] == {"drop": ["ALL"]}
        assert values["podSecurityContext"][component]["runAsNonRoot"] is True


def test_the_operator_role_reads_only_the_redis_secret(stack: tuple[StackConfig, Captured]) -> None:
    _, captured = stack
    trust = json.loads(captured.inputs(ROLE, "keda-keda-operator")["assumeRolePolicy"])
    (condition,) = [s["Condition"]["StringEquals"] for s in trust["Statement"]]
    assert f"system:serviceaccount:{KEDA_NAMESPACE}:{OPERATOR_SERVICE_ACCOUNT}" in condition.values()
    policy = json.loads(captured.inputs(ROLE_POLICY, "keda-keda-operator-secret")["policy"])
    actions = {
        (s["Action"], s["Resource"] if isinstance(s["Resource"], str) else tuple(s["Resource"]))
        for s in policy["Statement"]
    }
    assert actions == {
        ("secretsmanager:GetSecretValue", (BACKENDS.redis_auth_secret_arn,)),
        ("kms:Decrypt", SECRETS_KEY_ARN),
    } or actions == {
        ("secretsmanager:GetSecretValue", BACKENDS.redis_auth_secret_arn),
        ("kms:Decrypt", SECRETS_KEY_ARN),
    }
    decrypt = next(s for s in policy["Statement"] if s["Action"] == "kms:Decrypt")
    assert decrypt["Condition"]["StringEquals"]["kms:ViaService"].startswith("secretsmanager.")


def keda_policies(captured: Captured) -> dict[str, dict[str, Any]]:
    return {
        inputs["metadata"]["name"]: inputs["spec"]
        for inputs in (captured.inputs(NETWORK_POLICY, r.name) for r in captured.of_type(NETWORK_POLICY))
        if inputs["metadata"]["namespace"] == KEDA_NAMESPACE
    }


def ports(rule: dict[str, Any]) -> set[int]:
    return {int(p["port"]) for p in rule.get("ports", [])}


def test_keda_namespace_is_restricted_and_denies_all_but_its_flows(
    stack: tuple[StackConfig, Captured],
) -> None:
    _, captured = stack
    namespace = next(
        captured.inputs(NAMESPACE, r.name)
        for r in captured.of_type(NAMESPACE)
        if captured.inputs(NAMESPACE, r.name)["metadata"]["name"] == KEDA_NAMESPACE
    )
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    policies = keda_policies(captured)
    assert policies["default-deny"]["podSelector"] == {}
    assert set(policies["default-deny"]["policyTypes"]) == {"Ingress", "Egress"}
    operator = policies["operator"]
    to_vpc = [
        r for r in operator["egress"] if any(p.get("ipBlock", {}).get("cidr") == VPC_CIDR for p in r["to"])
    ]
    assert {port for rule in to_vpc for port in ports(rule)} == {BACKENDS.redis_port}
    to_anywhere = [r for r in operator["egress"] if r["to"] == [{"ipBlock": {"cidr": "0.0.0.0/0"}}]]
    assert {port for rule in to_anywhere for port in ports(rule)} == {443}
    # The kube API server (in the VPC) reaches the metrics apiserver on 6443, nothing else does.
    (inbound,) = policies["metrics-apiserver"]["ingress"]
    assert inbound == {
        "from": [{"ipBlock": {"cidr": VPC_CIDR}}],
        "ports": [{"protocol": "TCP", "port": 6443}],
    }
    (grpc,) = operator["ingress"]
    assert ports(grpc) == {9666}


# --- quota and limits -------------------------------------------------------------------------------

CPU = re.compile(r"^(\d+)(m?)$")
MEMORY = re.compile(r"^(\d+)(Mi|Gi)$")


def quantity(resource: str, value: str) -> int:
    """Millicores or MiB, parsed here independently of the component's own parser."""
    if resource.endswith("cpu"):
        number, milli = CPU.fullmatch(value).groups()  # type: ignore[union-attr]
        return int(number) if milli else int(number) * 1000
    number, unit = MEMORY.fullmatch(value).groups()  # type: ignore[union-attr]
    return int(number) * (1024 if unit == "Gi" else 1)


def usage(captured: Captured, pods: dict[tuple[str, str], int]) -> dict[str, int]:
    """What ``pods`` (count per workload) would ask of the quota, from their captured containers."""
    total = {"pods": 0, "requests.cpu": 0, "requests.memory": 0, "limits.cpu": 0, "limits.memory": 0}
    for (type_, name), count in pods.items():
        (container,) = pod_spec(captured, type_, name)["containers"]
        total["pods"] += count
        for kind in ("requests", "limits"):
            for resource, value in container["resources"][kind].items():
                total[f"{kind}.{resource}"] += count * quantity(resource, value)
    return total


def admitted(captured: Captured, pods: dict[tuple[str, str], int]) -> bool:
    hard = keda_resource(captured, QUOTA)["spec"]["hard"]
    need = usage(captured, pods)
    return all(
        need[key] <= (int(value) if key == "pods" else quantity(key, value)) for key, value in hard.items()
    )


def scale_out(config: StackConfig, factor: float, *, surge: bool) -> dict[tuple[str, str], int]:
    def pods(replicas: int) -> int:
        scaled = math.ceil(replicas * factor)
        return scaled + (math.ceil(scaled * ROLLOUT_SURGE_PERCENT / 100) if surge else 0)

    return {
        (DEPLOYMENT, "app-api"): pods(config.app.api.max_replicas),
        (DEPLOYMENT, "app-worker"): pods(config.app.worker.max_replicas),
        (JOB, "app-migrations"): 1,
    }


def test_the_quota_admits_the_stacks_largest_scale_out_mid_rollout(
    stack: tuple[StackConfig, Captured],
) -> None:
    config, captured = stack
    assert admitted(captured, scale_out(config, 1.0, surge=True))


def test_the_quota_refuses_half_as_many_again(stack: tuple[StackConfig, Captured]) -> None:
    config, captured = stack
    assert not admitted(captured, scale_out(config, 1.5, surge=False))


def test_the_limit_range_admits_every_container_and_defaults_a_bare_one(
    stack: tuple[StackConfig, Captured],
) -> None:
    _, captured = stack
    (item,) = keda_resource(captured, LIMIT_RANGE)["spec"]["limits"]
    assert item["type"] == "Container"
    for type_, name in ((DEPLOYMENT, "app-api"), (DEPLOYMENT, "app-worker"), (JOB, "app-migrations")):
        (container,) = pod_spec(captured, type_, name)["containers"]
        for resource, value in container["resources"]["limits"].items():
            assert quantity(resource, value) <= quantity(resource, item["max"][resource])
    assert set(item["default"]) == set(item["defaultRequest"]) == {"cpu", "memory"}


# --- the published CRD schemas ----------------------------------------------------------------------


def manifest(captured: Captured, type_: str, kind: str) -> dict[str, Any]:
    inputs = keda_resource(captured, type_)
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": kind,
        "metadata": inputs["metadata"],
        "spec": inputs["spec"],
    }


def test_keda_objects_match_the_published_crds_and_a_wrong_one_does_not(
    stack: tuple[StackConfig, Captured],
) -> None:
    _, captured = stack
    scaled = manifest(captured, SCALED_OBJECT, "ScaledObject")
    auth = manifest(captured, TRIGGER_AUTHENTICATION, "TriggerAuthentication")
    assert crd_schema_errors([scaled, auth]) == {"errors": [], "unchecked": []}
    wrong = copy.deepcopy(scaled)
    wrong["spec"]["maxReplicaCount"] = "ten"  # an int32 in the CRD
    no_secret = copy.deepcopy(auth)
    del no_secret["spec"]["awsSecretManager"]["secrets"][0]["parameter"]
    errors = crd_schema_errors([wrong, no_secret])["errors"]
    assert len(errors) == 2 and "maxReplicaCount" in errors[0] and "parameter" in errors[1]


def test_production_runs_two_operators_with_a_budget_staging_one(stack: tuple[StackConfig, Captured]) -> None:
    config, captured = stack
    values = captured.inputs(RELEASE, "keda-keda")["values"]
    replicas = 2 if config.is_production else 1
    assert values["operator"]["replicaCount"] == values["webhooks"]["replicaCount"] == replicas
    # One metrics apiserver: the external metrics API is one APIService endpoint.
    assert values["metricsServer"]["replicaCount"] == 1
    budget = {"minAvailable": 1} if config.is_production else {}
    assert values["podDisruptionBudget"] == {"operator": budget, "webhooks": budget}


def test_the_quota_follows_the_bounds() -> None:
    """Raise a bound and the quota grows with it: the two cannot drift apart."""
    app = stack_config("production").app
    bigger = app.model_copy(update={"worker": app.worker.model_copy(update={"max_replicas": 20})})
    small, large = quota_totals(app), quota_totals(bigger)
    extra_pods = with_surge(20) - with_surge(app.worker.max_replicas)
    assert large.pods > small.pods
    assert large.cpu_limit - small.cpu_limit >= extra_pods * 2000  # 2 CPU per worker
