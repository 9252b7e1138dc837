"""The workloads under mocks, for both stacks: hardened pods, images by digest, migrations before the
API, the public routes, TLS from the configured issuer, PDBs, HPAs, IRSA and network policies."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from components.edge import PROXY_LABELS
from components.workloads.component import config_map_name, digest_of, migrations_job_name
from components.workloads.contract import (
    API_KEEP_ALIVE_SECONDS,
    API_PORT,
    EDGE_UPSTREAM_IDLE_SECONDS,
    RDS_CA_BUNDLE_PATH,
)
from components.workloads.pods import TASK_SOFT_TIME_LIMIT_SECONDS, TASK_TIME_LIMIT_SECONDS
from infra.config import StackConfig
from tests.app.settings_env import load_with
from tests.infra.harness import Captured
from tests.infra.k8s_fixtures import (
    BACKEND_TRAFFIC_POLICY,
    BACKENDS,
    CONFIG_MAP,
    DEPLOYMENT,
    GATEWAY,
    HPA,
    HTTP_ROUTE,
    JOB,
    NAMESPACE,
    NETWORK_POLICY,
    PDB,
    REPOSITORY_URLS,
    ROLE_ARNS,
    SERVICE,
    SERVICE_ACCOUNT,
    VPC_CIDR,
    compose,
    pod_spec,
    stack_config,
)

WORKLOADS = (
    ("api", DEPLOYMENT, "app-api"),
    ("worker", DEPLOYMENT, "app-worker"),
    ("migrations", JOB, "app-migrations"),
)


@pytest.fixture(scope="module", params=["staging", "production"])
def stack(request: pytest.FixtureRequest) -> tuple[StackConfig, Captured]:
    config = stack_config(str(request.param))
    return config, compose(config)


# --- checks (plain functions, so the mutation tests below can show they fail) ----------------------


def assert_hardened(spec: dict[str, Any]) -> None:
    """Non-root, read-only root FS, no capabilities, no escalation, seccomp, no API token."""
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] >= 10000, pod
    assert pod["seccompProfile"]["type"] == "RuntimeDefault", pod
    assert spec["automountServiceAccountToken"] is False
    for container in spec["containers"]:
        ctx = container["securityContext"]
        assert ctx["runAsNonRoot"] is True, container["name"]
        assert ctx["readOnlyRootFilesystem"] is True, container["name"]
        assert ctx["allowPrivilegeEscalation"] is False, container["name"]
        assert ctx["capabilities"] == {"drop": ["ALL"]}, container["name"]
        assert not ctx.get("privileged"), container["name"]
        mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
        assert "/tmp" in mounts, "a read-only root FS needs a writable /tmp"
        limits, requests = container["resources"]["limits"], container["resources"]["requests"]
        assert {"cpu", "memory"} <= limits.keys() and {"cpu", "memory"} <= requests.keys(), container["name"]


def assert_not_routed(route: dict[str, Any], path: str) -> None:
    """No rule of an HTTPRoute that forwards to a backend matches ``path`` (a rule without matches is /)."""
    for rule in route["spec"]["rules"]:
        if not rule.get("backendRefs"):
            continue
        for match in rule.get("matches") or [{"path": {"type": "PathPrefix", "value": "/"}}]:
            routed, kind = match["path"]["value"], match["path"]["type"]
            covers = routed == path or (kind == "PathPrefix" and path.startswith(routed.rstrip("/") + "/"))
            assert not covers, f"{path} is routed by {kind} {routed}"


# --- pods -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("component", "kind", "name"), WORKLOADS)
def test_pods_are_hardened_with_resources(
    stack: tuple[StackConfig, Captured], component: str, kind: str, name: str
) -> None:
    _, captured = stack
    spec = pod_spec(captured, kind, name)
    assert_hardened(spec)
    assert spec["serviceAccountName"] == component


def test_the_hardening_check_catches_a_writable_root_fs(stack: tuple[StackConfig, Captured]) -> None:
    spec = copy.deepcopy(pod_spec(stack[1], DEPLOYMENT, "app-api"))
    spec["containers"][0]["securityContext"]["readOnlyRootFilesystem"] = False
    with pytest.raises(AssertionError):
        assert_hardened(spec)


@pytest.mark.parametrize(("component", "kind", "name"), WORKLOADS)
def test_images_are_pinned_by_digest_from_their_repository(
    stack: tuple[StackConfig, Captured], component: str, kind: str, name: str
) -> None:
    _, captured = stack
    (container,) = pod_spec(captured, kind, name)["containers"]
    repository, _, digest = container["image"].partition("@sha256:")
    assert repository == REPOSITORY_URLS[component]
    assert len(digest) == 64 and ":" not in repository.rsplit("/", 1)[1], container["image"]


def test_digest_helpers_refuse_tags() -> None:
    with pytest.raises(ValueError, match="not pinned"):
        digest_of(f"{REPOSITORY_URLS['api']}:0.1.0")
    assert (
        migrations_job_name(f"{REPOSITORY_URLS['migrations']}@sha256:{'ab' * 32}") == "migrate-abababababab"
    )


def go_duration_seconds(value: str) -> int:
    """Seconds of a Pulumi custom timeout such as ``20m`` or ``1h30m``."""
    units = {"h": 3600, "m": 60, "s": 1}
    parts = re.findall(r"(\d+)([hms])", value)
    assert parts and "".join(n + u for n, u in parts) == value, value
    return sum(int(n) * units[u] for n, u in parts)


def test_pulumi_waits_for_the_migrations_longer_than_they_may_run(
    stack: tuple[StackConfig, Captured],
) -> None:
    """Pulumi gives up on a Job after 10 minutes unless told otherwise; a migration allowed 15 would be
    reported failed while it still runs, and the next `up` would find it half done."""
    _, captured = stack
    registration = captured.one(JOB, "app-migrations")
    deadline = captured.inputs(JOB, "app-migrations")["spec"]["activeDeadlineSeconds"]
    for kind in ("create", "update"):
        assert go_duration_seconds(registration.custom_timeouts[kind]) > deadline, (
            registration.custom_timeouts
        )


def test_migrations_job_is_named_by_its_image_and_bounded(stack: tuple[StackConfig, Captured]) -> None:
    _, captured = stack
    job = captured.inputs(JOB, "app-migrations")
    image = job["spec"]["template"]["spec"]["containers"][0]["image"]
    assert job["metadata"]["name"] == migrations_job_name(image)
    assert job["spec"]["backoffLimit"] <= 3 and job["spec"]["activeDeadlineSeconds"] > 0
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert "ttlSecondsAfterFinished" not in job["spec"], "a deleted Job would run again on the next deploy"
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", "app", "migrate"]
    assert {"name": "DATABASE_MASTER_SECRET_ARN", "value": BACKENDS.database_master_secret_arn} in container[
        "env"
    ]


def test_migrations_job_precedes_the_api_and_the_workers(stack: tuple[StackConfig, Captured]) -> None:
    _, captured = stack
    job = captured.one(JOB, "app-migrations")
    for name in ("app-api", "app-worker"):
        assert job.urn in captured.one(DEPLOYMENT, name).depends_on, f"{name} may roll out before migrations"


def test_no_init_container_runs_migrations(stack: tuple[StackConfig, Captured]) -> None:
    for name in ("app-api", "app-worker"):
        assert not pod_spec(stack[1], DEPLOYMENT, name).get("initContainers")


def test_api_probes_split_liveness_from_readiness(stack: tuple[StackConfig, Captured]) -> None:
    (container,) = pod_spec(stack[1], DEPLOYMENT, "app-api")["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["startupProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/api/v1/ready"


def test_api_drains_before_it_stops_and_never_rolls_below_capacity(
    stack: tuple[StackConfig, Captured],
) -> None:
    config, captured = stack
    deployment = captured.inputs(DEPLOYMENT, "app-api")
    spec = deployment["spec"]["template"]["spec"]
    pause = spec["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert spec["terminationGracePeriodSeconds"] > pause + 20, "uvicorn needs 20 s after the pause"
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert deployment["spec"]["replicas"] == config.app.api.min_replicas


def test_a_rollout_or_a_drain_keeps_a_ready_api(stack: tuple[StackConfig, Captured]) -> None:
    """What tests/reliability/test_rolling_release.py relies on: new pods surge in before old ones
    leave, and a voluntary disruption never takes the last Ready API pod."""
    config, captured = stack
    rolling = captured.inputs(DEPLOYMENT, "app-api")["spec"]["strategy"]["rollingUpdate"]
    assert rolling["maxUnavailable"] == 0 and rolling["maxSurge"] not in {0, "0%"}
    pdb = captured.inputs(PDB, "app-api-pdb")
    assert config.app.api.min_replicas - pdb["spec"]["maxUnavailable"] >= 1


def test_worker_outlives_its_tasks_and_is_pinged(stack: tuple[StackConfig, Captured]) -> None:
    config, captured = stack
    spec = pod_spec(captured, DEPLOYMENT, "app-worker")
    assert spec["terminationGracePeriodSeconds"] > TASK_TIME_LIMIT_SECONDS > TASK_SOFT_TIME_LIMIT_SECONDS
    probe = " ".join(spec["containers"][0]["livenessProbe"]["exec"]["command"])
    assert "inspect ping" in probe and "celery@$HOSTNAME" in probe
    data = captured.inputs(CONFIG_MAP)["data"]
    assert data["WORKER_CONCURRENCY"] == str(config.app.worker_concurrency)
    assert data["TASK_SOFT_TIME_LIMIT_SECONDS"] == str(TASK_SOFT_TIME_LIMIT_SECONDS)


@pytest.mark.parametrize("name", ["app-api", "app-worker"])
def test_pods_spread_over_zones(stack: tuple[StackConfig, Captured], name: str) -> None:
    keys = {c["topologyKey"] for c in pod_spec(stack[1], DEPLOYMENT, name)["topologySpreadConstraints"]}
    assert "topology.kubernetes.io/zone" in keys


# --- identity and configuration ----------------------------------------------------------------------


def test_namespace_enforces_restricted_pod_security(stack: tuple[StackConfig, Captured]) -> None:
    config, captured = stack
    namespace = captured.inputs(NAMESPACE, "app-namespace")
    assert namespace["metadata"]["name"] == config.app.namespace
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("component", ["api", "worker", "migrations"])
def test_service_accounts_carry_the_irsa_role(stack: tuple[StackConfig, Captured], component: str) -> None:
    config, captured = stack
    account = captured.inputs(SERVICE_ACCOUNT, f"app-{component}-sa")
    assert account["metadata"]["name"] == component
    assert account["metadata"]["namespace"] == config.app.namespace
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == ROLE_ARNS[component]


def test_no_kubernetes_secret_carries_an_app_secret(stack: tuple[StackConfig, Captured]) -> None:
    _, captured = stack
    assert not captured.of_type("kubernetes:core/v1:Secret")
    for _, kind, name in WORKLOADS:
        for container in pod_spec(captured, kind, name)["containers"]:
            refs = [e for e in container.get("env", []) if "valueFrom" in e]
            assert not refs, refs
            assert all("secretRef" not in source for source in container["envFrom"])


def test_config_map_holds_the_runtime_contract(stack: tuple[StackConfig, Captured]) -> None:
    config, captured = stack
    config_map = captured.inputs(CONFIG_MAP)
    data = config_map["data"]
    assert data["APP_ENV"] == config.environment
    assert data["DATABASE_HOST"] == BACKENDS.database_host and data["DATABASE_IAM_AUTH"] == "true"
    assert data["DATABASE_USER"] == "app"
    assert data["REDIS_TLS"] == "true" and data["REDIS_AUTH_SECRET_ARN"] == BACKENDS.redis_auth_secret_arn
    assert data["LLM_API_KEY_SECRET_ARN"] == BACKENDS.llm_api_key_secret_arn
    assert data["WEBHOOK_MAX_BODY_BYTES"] == str(config.app.max_body_kib * 1024)
    assert data["CORS_ORIGINS"] == ",".join(config.app.cors_origins)
    assert "DATABASE_MASTER_SECRET_ARN" not in data, "only the migrations Job gets the owner's secret"
    assert config_map["metadata"]["name"] == config_map_name(data) and config_map["immutable"] is True
    for _, kind, name in WORKLOADS:
        (container,) = pod_spec(captured, kind, name)["containers"]
        assert container["envFrom"] == [{"configMapRef": {"name": config_map["metadata"]["name"]}}]


def test_config_map_verifies_the_database_certificate(
    stack: tuple[StackConfig, Captured], monkeypatch: pytest.MonkeyPatch
) -> None:
    """verify-full against the bundle the images carry, and the service itself accepts the ConfigMap as
    it stands (its settings refuse anything weaker once deployed)."""
    _, captured = stack
    data = captured.inputs(CONFIG_MAP)["data"]
    assert data["DATABASE_SSLMODE"] == "verify-full"
    assert data["DATABASE_SSLROOTCERT"] == RDS_CA_BUNDLE_PATH
    settings = load_with(monkeypatch, {key: str(value) for key, value in data.items()})
    assert settings.database_sslmode_effective == "verify-full" and settings.redis_tls


# --- traffic ------------------------------------------------------------------------------------------


def routes(captured: Captured) -> dict[str, dict[str, Any]]:
    return {name: captured.inputs(HTTP_ROUTE, f"app-httproute-{name}") for name in ("api", "api-webhook")}


def routed_paths(route: dict[str, Any]) -> set[str]:
    return {m["path"]["value"] for rule in route["spec"]["rules"] for m in rule["matches"]}


def test_routes_publish_the_public_paths_only(stack: tuple[StackConfig, Captured]) -> None:
    config, captured = stack
    published = routes(captured)
    assert routed_paths(published["api-webhook"]) == {"/webhook"}
    docs = {"/docs", "/openapi.json"} if config.edge.publish_docs else set()
    assert routed_paths(published["api"]) == {"/api", "/health"} | docs
    for route in published.values():
        assert route["spec"]["hostnames"] == [config.public_hostname]
        assert route["spec"]["parentRefs"] == [
            {"name": "edge", "namespace": "envoy-gateway-system", "sectionName": "https"}
        ]
        for rule in route["spec"]["rules"]:
            assert rule["backendRefs"] == [{"name": "api", "port": API_PORT}]
        assert_not_routed(route, "/metrics")


def test_docs_are_routed_only_where_the_stack_says_so() -> None:
    config = stack_config("staging")
    config = config.model_copy(update={"edge": config.edge.model_copy(update={"publish_docs": False})})
    assert routed_paths(routes(compose(config))["api"]) == {"/api", "/health"}


def test_the_routing_check_catches_a_catch_all(stack: tuple[StackConfig, Captured]) -> None:
    route = copy.deepcopy(routes(stack[1])["api"])
    route["spec"]["rules"][0]["matches"].append({"path": {"type": "PathPrefix", "value": "/"}})
    with pytest.raises(AssertionError):
        assert_not_routed(route, "/metrics")


def test_routes_send_the_security_headers_and_time_out(stack: tuple[StackConfig, Captured]) -> None:
    config, captured = stack
    for route in routes(captured).values():
        (rule,) = route["spec"]["rules"]
        (headers,) = [f["responseHeaderModifier"]["set"] for f in rule["filters"]]
        sent = {h["name"]: h["value"] for h in headers}
        assert sent["Strict-Transport-Security"].startswith("max-age=31536000")
        assert sent["X-Content-Type-Options"] == "nosniff" and sent["X-Frame-Options"] == "DENY"
        assert rule["timeouts"] == {"request": f"{config.edge.request_timeout_seconds}s"}


def test_webhook_route_is_rate_limited_per_client_and_bodies_are_limited(
    stack: tuple[StackConfig, Captured],
) -> None:
    config, captured = stack
    policies = {
        name: captured.inputs(BACKEND_TRAFFIC_POLICY, f"app-backendtrafficpolicy-{name}")["spec"]
        for name in ("api", "api-webhook")
    }
    for name, spec in policies.items():
        assert spec["targetRefs"] == [
            {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": name}
        ]
        assert spec["requestBuffer"] == {"limit": f"{config.app.max_body_kib}Ki"}
        # The proxy closes idle connections to the API before uvicorn does (a race otherwise resets
        # a request sent on a connection uvicorn is closing).
        idle = spec["timeout"]["http"]["connectionIdleTimeout"]
        assert (
            idle == f"{EDGE_UPSTREAM_IDLE_SECONDS}s" and EDGE_UPSTREAM_IDLE_SECONDS < API_KEEP_ALIVE_SECONDS
        )
    (rule,) = policies["api-webhook"]["rateLimit"]["local"]["rules"]
    assert rule["clientSelectors"] == [{"sourceCIDR": {"type": "Distinct", "value": "0.0.0.0/0"}}]
    assert rule["limit"] == {"requests": config.app.rate_limit_rps, "unit": "Second"}
    assert "rateLimit" not in policies["api"]


def test_routes_wait_for_the_gateway(stack: tuple[StackConfig, Captured]) -> None:
    captured = stack[1]
    gateway = captured.one(GATEWAY).urn
    for name in ("api", "api-webhook"):
        assert gateway in captured.one(HTTP_ROUTE, f"app-httproute-{name}").depends_on


def test_services_name_their_metrics_port(stack: tuple[StackConfig, Captured]) -> None:
    for name in ("app-api-svc", "app-worker-svc"):
        service = stack[1].inputs(SERVICE, name)
        assert service["spec"]["type"] == "ClusterIP"
        assert "metrics" in {p["name"] for p in service["spec"]["ports"]}


@pytest.mark.parametrize("component", ["api", "worker"])
def test_every_deployment_has_a_pdb(stack: tuple[StackConfig, Captured], component: str) -> None:
    _, captured = stack
    template_labels = captured.inputs(DEPLOYMENT, f"app-{component}")["spec"]["template"]["metadata"][
        "labels"
    ]
    pdb = captured.inputs(PDB, f"app-{component}-pdb")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= template_labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1


def test_the_api_has_a_cpu_and_memory_hpa_and_the_worker_none_of_ours(
    stack: tuple[StackConfig, Captured],
) -> None:
    """KEDA owns the worker's HPA (tests/infra/test_scaling.py): a second one would fight it."""
    config, captured = stack
    hpas = [captured.inputs(HPA, r.name) for r in captured.of_type(HPA)]
    assert [h["spec"]["scaleTargetRef"]["name"] for h in hpas] == ["api"]
    (hpa,) = hpas
    settings = config.app.api
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (
        settings.min_replicas,
        settings.max_replicas,
    )
    targets = {
        m["resource"]["name"]: m["resource"]["target"]["averageUtilization"] for m in hpa["spec"]["metrics"]
    }
    assert targets == {"cpu": settings.target_cpu_percent, "memory": settings.target_memory_percent}


def _policies(captured: Captured, namespace: str = "ai-agents") -> dict[str, dict[str, Any]]:
    """The app namespace's policies by name (the edge's namespace has its own, test_platform.py)."""
    return {
        inputs["metadata"]["name"]: inputs["spec"]
        for inputs in (captured.inputs(NETWORK_POLICY, r.name) for r in captured.of_type(NETWORK_POLICY))
        if inputs["metadata"]["namespace"] == namespace
    }


def test_network_policies_deny_by_default(stack: tuple[StackConfig, Captured]) -> None:
    deny = _policies(stack[1])["default-deny"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert not deny.get("ingress") and not deny.get("egress")


def test_only_the_gateway_proxies_reach_the_api(stack: tuple[StackConfig, Captured]) -> None:
    policies = _policies(stack[1])
    (rule,) = policies["api-from-gateway"]["ingress"]
    (peer,) = rule["from"]
    assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "envoy-gateway-system"}
    assert peer["podSelector"]["matchLabels"] == PROXY_LABELS
    assert rule["ports"] == [{"protocol": "TCP", "port": API_PORT}]


@pytest.mark.parametrize("component", ["api", "worker"])
def test_egress_is_dns_data_stores_and_https(stack: tuple[StackConfig, Captured], component: str) -> None:
    egress = _policies(stack[1])[f"{component}-egress"]["egress"]
    ports = {(p["protocol"], p["port"]) for rule in egress for p in rule["ports"]}
    assert ports == {("UDP", 53), ("TCP", 53), ("TCP", 5432), ("TCP", BACKENDS.redis_port), ("TCP", 443)}
    data_rule = next(rule for rule in egress if {"protocol": "TCP", "port": 5432} in rule["ports"])
    assert data_rule["to"] == [{"ipBlock": {"cidr": VPC_CIDR}}], "data stores are reachable only in the VPC"


def test_no_acme_solver_policy_in_the_app_namespace(stack: tuple[StackConfig, Captured]) -> None:
    # The Certificate and so cert-manager's HTTP-01 solver pods live in the edge's namespace.
    assert set(_policies(stack[1])) == {
        "default-deny",
        "api-from-gateway",
        "api-egress",
        "worker-egress",
        "migrations-egress",
    }


def test_every_kubernetes_object_uses_the_cluster_provider(stack: tuple[StackConfig, Captured]) -> None:
    _, captured = stack
    objects = [r for r in captured.registrations if r.type.startswith("kubernetes:")]
    assert objects and all(r.provider.startswith("urn:pulumi:") and "::k8s::" in r.provider for r in objects)


def test_every_object_has_an_explicit_name_and_namespace(stack: tuple[StackConfig, Captured]) -> None:
    config, captured = stack
    component = captured.one("ai-agents:workloads:Workloads")
    for child in captured.children_of(component.urn):
        metadata = captured.inputs(child.type, child.name)["metadata"]
        assert metadata.get("name"), child.name
        if child.type != NAMESPACE:
            assert metadata["namespace"] == config.app.namespace, child.name
