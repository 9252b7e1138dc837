"""The platform under mocks: pinned official charts, CRDs before issuers, DNS-01 with IRSA only when a
hosted zone is configured, and the edge: Envoy Gateway behind an NLB (allowed CIDRs, proxy protocol), a
Gateway whose plain-HTTP listener only redirects, TLS 1.2+ with modern ciphers, a cert-manager
certificate from the stack's issuer, no ingress-nginx and no Ingress."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest

from components.edge import CHART_REGISTRY, PROXY_LABELS, TLS_CIPHERS
from components.platform import ACME_SERVERS, CERT_MANAGER_REPO
from components.workloads.contract import API_PORT
from infra.config import StackConfig
from stacks.plan import check_policies, resource_entries
from tests.infra.harness import Captured
from tests.infra.k8s_fixtures import (
    CERTIFICATE,
    CLIENT_TRAFFIC_POLICY,
    CLUSTER_ISSUER,
    ENVOY_PROXY,
    GATEWAY,
    HTTP_ROUTE,
    NAMESPACE,
    OIDC_PROVIDER_ARN,
    RELEASE,
    compose,
    stack_config,
)
from tests.infra.netpol import NETWORK_POLICY, Endpoint, allowed, network_policies

ROLE = "aws:iam/role:Role"
ZONE = "Z0123456789ABCDEFGHIJ"


@pytest.fixture(scope="module", params=["staging", "production"])
def stack(request: pytest.FixtureRequest) -> tuple[StackConfig, Captured]:
    config = stack_config(str(request.param))
    return config, compose(config)


@pytest.fixture(scope="module")
def with_zone() -> tuple[StackConfig, Captured]:
    config = stack_config("production", hosted_zone_id=ZONE)
    return config, compose(config)


def release(captured: Captured, role: str) -> dict[str, Any]:
    return captured.inputs(RELEASE, f"platform-{role}")


def issuer_specs(captured: Captured) -> dict[str, dict[str, Any]]:
    return {
        inputs["metadata"]["name"]: inputs["spec"]
        for inputs in (captured.inputs(CLUSTER_ISSUER, r.name) for r in captured.of_type(CLUSTER_ISSUER))
    }


def test_charts_are_official_and_pinned_from_config(stack: tuple[StackConfig, Captured]) -> None:
    config, captured = stack
    cert_manager = release(captured, "cert-manager")
    assert cert_manager["repositoryOpts"]["repo"] == CERT_MANAGER_REPO
    assert cert_manager["version"] == config.platform.cert_manager_chart_version
    crds, controller = (
        captured.inputs(RELEASE, f"platform-edge-{r}") for r in ("crds-chart", "envoy-gateway")
    )
    assert crds["chart"] == f"{CHART_REGISTRY}/gateway-crds-helm"
    assert controller["chart"] == f"{CHART_REGISTRY}/gateway-helm"
    assert crds["version"] == controller["version"] == config.edge.envoy_gateway_chart_version
    metrics = release(captured, "metrics-server")
    assert metrics["version"] == config.platform.metrics_server_chart_version
    assert all(r["atomic"] is True for r in (cert_manager, crds, controller, metrics))


def test_no_ingress_nginx_and_no_ingress(stack: tuple[StackConfig, Captured]) -> None:
    _, captured = stack
    releases = [captured.inputs(RELEASE, r.name) for r in captured.of_type(RELEASE)]
    assert not [r for r in releases if "ingress-nginx" in r["chart"]]
    assert not captured.of_type("kubernetes:networking.k8s.io/v1:Ingress")


def test_gateway_api_crds_are_pinned_standard_channel_and_owned_by_one_release(
    stack: tuple[StackConfig, Captured],
) -> None:
    _, captured = stack
    crds = captured.inputs(RELEASE, "platform-edge-crds-chart")
    assert crds["values"]["crds"]["gatewayAPI"] == {"enabled": True, "channel": "standard"}
    assert crds["values"]["crds"]["envoyGateway"] == {"enabled": True}
    assert captured.inputs(RELEASE, "platform-edge-envoy-gateway")["skipCrds"] is True
    chart = captured.one(RELEASE, "platform-edge-crds-chart").urn
    assert chart in captured.one(RELEASE, "platform-edge-envoy-gateway").depends_on


def test_cert_manager_installs_its_crds_before_the_issuers(stack: tuple[StackConfig, Captured]) -> None:
    _, captured = stack
    assert release(captured, "cert-manager")["values"]["crds"] == {"enabled": True, "keep": True}
    chart = captured.one(RELEASE, "platform-cert-manager")
    issuers = captured.of_type(CLUSTER_ISSUER)
    assert len(issuers) == 2
    assert all(chart.urn in issuer.depends_on for issuer in issuers)


def test_every_cert_manager_component_survives_a_node_drain_in_production(
    stack: tuple[StackConfig, Captured],
) -> None:
    """Controller, webhook (admission of every Certificate) and cainjector: as many replicas as the
    controller (two in production, infra/program.py) and a PDB each."""
    config, captured = stack
    values = release(captured, "cert-manager")["values"]
    replicas = values["replicaCount"]
    assert replicas >= 2 or config.environment != "production"
    for part in (values["webhook"], values["cainjector"]):
        assert part["replicaCount"] == replicas
        assert part["podDisruptionBudget"] == {"enabled": replicas > 1, "minAvailable": 1}


def test_both_lets_encrypt_issuers_exist(stack: tuple[StackConfig, Captured]) -> None:
    config, captured = stack
    specs = issuer_specs(captured)
    assert {name: spec["acme"]["server"] for name, spec in specs.items()} == ACME_SERVERS
    assert all(spec["acme"]["email"] == config.platform.acme_email for spec in specs.values())


def test_without_a_zone_http01_and_no_aws_role(stack: tuple[StackConfig, Captured]) -> None:
    config, captured = stack
    assert config.platform.hosted_zone_id is None
    for spec in issuer_specs(captured).values():
        ((solver,),) = [s["http01"]["gatewayHTTPRoute"]["parentRefs"] for s in spec["acme"]["solvers"]]
        assert (solver["name"], solver["namespace"], solver["sectionName"]) == (
            "edge",
            "envoy-gateway-system",
            "http",
        )
    assert release(captured, "cert-manager")["values"]["config"]["enableGatewayAPI"] is True
    # (KEDA's operator role is KEDA's, tests/infra/test_scaling.py.)
    assert not [r for r in captured.of_type(ROLE) if r.name.startswith("platform-")]
    assert "serviceAccount" not in release(captured, "cert-manager")["values"]


def test_with_a_zone_dns01_through_irsa(with_zone: tuple[StackConfig, Captured]) -> None:
    _, captured = with_zone
    for spec in issuer_specs(captured).values():
        (solver,) = spec["acme"]["solvers"]
        assert solver["dns01"]["route53"]["hostedZoneID"] == ZONE
    role = captured.inputs(ROLE, "platform-cert-manager")
    (statement,) = json.loads(role["assumeRolePolicy"])["Statement"]
    assert statement["Principal"]["Federated"] == OIDC_PROVIDER_ARN
    (conditions,) = statement["Condition"].values()
    assert "system:serviceaccount:cert-manager:cert-manager" in conditions.values()
    policy = json.loads(
        captured.inputs("aws:iam/rolePolicy:RolePolicy", "platform-cert-manager-route53")["policy"]
    )
    zones = [s["Resource"] for s in policy["Statement"] if "route53:ChangeResourceRecordSets" in s["Action"]]
    assert zones == [f"arn:aws:route53:::hostedzone/{ZONE}"], "write access to exactly the one zone"
    annotations = release(captured, "cert-manager")["values"]["serviceAccount"]["annotations"]
    # The chart's service account assumes exactly the role declared above (named after it).
    assert ":role/platform-cert-manager-" in annotations["eks.amazonaws.com/role-arn"]


def test_the_proxies_sit_behind_an_nlb_restricted_to_the_allowed_cidrs(
    stack: tuple[StackConfig, Captured],
) -> None:
    config, captured = stack
    kubernetes = captured.inputs(ENVOY_PROXY)["spec"]["provider"]["kubernetes"]
    service = kubernetes["envoyService"]
    assert service["type"] == "LoadBalancer"
    assert service["annotations"]["service.beta.kubernetes.io/aws-load-balancer-type"] == "nlb"
    assert service["annotations"]["service.beta.kubernetes.io/aws-load-balancer-proxy-protocol"] == "*"
    assert service["loadBalancerSourceRanges"] == config.edge.allowed_cidrs
    assert service["externalTrafficPolicy"] == "Local", "rate limits need the client's address"
    assert kubernetes["envoyDeployment"]["replicas"] == config.edge.proxy_replicas
    (spread,) = kubernetes["envoyDeployment"]["pod"]["topologySpreadConstraints"]
    assert spread["labelSelector"]["matchLabels"] == PROXY_LABELS


def listeners(captured: Captured) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in captured.inputs(GATEWAY)["spec"]["listeners"]}


def test_https_listener_serves_the_app_namespace_with_the_certificate(
    stack: tuple[StackConfig, Captured],
) -> None:
    config, captured = stack
    https = listeners(captured)["https"]
    assert (https["protocol"], https["port"], https["hostname"]) == ("HTTPS", 443, config.public_hostname)
    assert https["tls"]["certificateRefs"] == [{"kind": "Secret", "name": "api-tls"}]
    selector = https["allowedRoutes"]["namespaces"]["selector"]["matchLabels"]
    assert selector == {"kubernetes.io/metadata.name": config.app.namespace}
    certificate = captured.inputs(CERTIFICATE)
    assert certificate["metadata"]["namespace"] == "envoy-gateway-system"
    assert certificate["spec"]["secretName"] == "api-tls"
    assert certificate["spec"]["dnsNames"] == [config.public_hostname]
    assert certificate["spec"]["issuerRef"]["name"] == config.platform.cluster_issuer
    chosen = next(
        r for r in captured.of_type(CLUSTER_ISSUER) if r.name.endswith(config.platform.cluster_issuer)
    )
    assert chosen.urn in captured.one(CERTIFICATE).depends_on


def test_plain_http_only_redirects(stack: tuple[StackConfig, Captured]) -> None:
    _, captured = stack
    http = listeners(captured)["http"]
    assert (http["protocol"], http["port"]) == ("HTTP", 80)
    # Only this namespace's routes attach: the redirect and cert-manager's HTTP-01 solver routes.
    assert http["allowedRoutes"]["namespaces"] == {"from": "Same"}
    redirect = captured.inputs(HTTP_ROUTE, "platform-edge-httproute-https-redirect")["spec"]
    assert redirect["parentRefs"] == [{"name": "edge", "sectionName": "http"}]
    (rule,) = redirect["rules"]
    assert "backendRefs" not in rule
    assert rule["filters"] == [
        {"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 301}}
    ]


def test_tls12_minimum_modern_ciphers_proxy_protocol_and_limits(stack: tuple[StackConfig, Captured]) -> None:
    config, captured = stack
    spec = captured.inputs(CLIENT_TRAFFIC_POLICY)["spec"]
    assert spec["targetRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "edge"}]
    assert spec["tls"]["minVersion"] == "1.2"
    assert spec["tls"]["ciphers"] == list(TLS_CIPHERS)
    assert all("ECDHE" in c and ("GCM" in c or "CHACHA20" in c) for c in spec["tls"]["ciphers"])
    assert spec["enableProxyProtocol"] is True
    assert spec["http1"]["maxRequestHeadersKB"] == config.edge.max_request_headers_kib
    assert spec["timeout"]["http"]["requestReceivedTimeout"] == f"{config.edge.request_timeout_seconds}s"


def test_add_on_namespaces_are_labelled_for_pod_security(stack: tuple[StackConfig, Captured]) -> None:
    _, captured = stack
    labels = {
        captured.inputs(NAMESPACE, r.name)["metadata"]["name"]: captured.inputs(NAMESPACE, r.name)[
            "metadata"
        ]["labels"]
        for r in captured.of_type(NAMESPACE)
    }
    assert labels["cert-manager"]["pod-security.kubernetes.io/enforce"] == "restricted"
    # Envoy Gateway's proxies listen on unprivileged ports as non-root: restricted, unlike ingress-nginx.
    assert labels["envoy-gateway-system"]["pod-security.kubernetes.io/enforce"] == "restricted"


def _platform_violations(captured: Captured, stack: str) -> list[str]:
    """The pack's mandatory findings on the platform's own resources (the composition around it has
    fake images and no monitoring, which stack-wide policies rightly flag)."""
    plan = {
        "project": "ai-agents-platform",
        "stack": stack,
        "resources": resource_entries(captured.registrations),
    }
    verdict = check_policies(plan)
    return [
        f"{v['policy']}: {v['urn']}: {v['message']}"
        for v in verdict["violations"]
        if v["enforcementLevel"] == "mandatory" and "ai-agents:platform:Platform" in (v.get("urn") or "")
    ]


def test_both_issuer_modes_are_clean_under_the_pack(
    stack: tuple[StackConfig, Captured], with_zone: tuple[StackConfig, Captured]
) -> None:
    """HTTP-01 (the stack files) and DNS-01 (a hosted zone): neither trips a mandatory policy, e.g.
    iam-no-wildcard-resources on the cert-manager role."""
    config, captured = stack
    assert not _platform_violations(captured, config.environment)
    zone_config, zone_captured = with_zone
    assert not _platform_violations(zone_captured, zone_config.environment)
    policy = json.loads(
        zone_captured.inputs("aws:iam/rolePolicy:RolePolicy", "platform-cert-manager-route53")["policy"]
    )
    assert all(s["Resource"] != "*" for s in policy["Statement"]), "cert-manager needs no zone lookup by name"


# The edge namespace's NetworkPolicies, read as Kubernetes would. The pods' labels are written out as
# Envoy Gateway v1.9 and cert-manager v1.19 render them (their sources), not taken from the constants
# under test, so a policy selecting the wrong labels fails here.
EDGE = "envoy-gateway-system"
PROXY = Endpoint(
    "10.0.1.10",
    EDGE,
    {
        "app.kubernetes.io/name": "envoy",
        "app.kubernetes.io/component": "proxy",
        "app.kubernetes.io/managed-by": "envoy-gateway",
        "gateway.envoyproxy.io/owning-gateway-name": "edge",
        "gateway.envoyproxy.io/owning-gateway-namespace": EDGE,
    },
)
CONTROLLER = Endpoint(
    "10.0.1.11",
    EDGE,
    {
        "control-plane": "envoy-gateway",
        "app.kubernetes.io/name": "gateway-helm",
        "app.kubernetes.io/instance": "envoy-gateway",
    },
)
CERTGEN = Endpoint("10.0.1.12", EDGE, {"app": "certgen"})
SOLVER = Endpoint(
    "10.0.1.13",
    EDGE,
    {"acme.cert-manager.io/http01-solver": "true", "acme.cert-manager.io/http-domain": "1234"},
)
PROMETHEUS = Endpoint("10.0.2.10", "monitoring", {"app.kubernetes.io/name": "prometheus"})
KUBE_DNS = Endpoint(
    "10.0.2.11", "kube-system", {"k8s-app": "kube-dns", "eks.amazonaws.com/component": "coredns"}
)
STRANGER = Endpoint("10.0.2.12", "default", {"app": "anything"})
CLIENT = Endpoint("203.0.113.7")


def app_pod(config: StackConfig, component: str) -> Endpoint:
    labels = {"app.kubernetes.io/name": "ai-agents", "app.kubernetes.io/component": component}
    return Endpoint("10.0.3.10", config.app.namespace, labels)


def in_vpc(config: StackConfig) -> Endpoint:
    """An address inside the VPC outside the pods': the control plane's network interfaces."""
    return Endpoint(str(ipaddress.ip_network(config.network.vpc_cidr)[200]))


def test_edge_namespace_denies_by_default(stack: tuple[StackConfig, Captured]) -> None:
    _, captured = stack
    deny = next(
        p["spec"]
        for p in network_policies(captured)
        if p["metadata"] == {"name": "default-deny", "namespace": EDGE}
    )
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert not deny.get("ingress") and not deny.get("egress")


def test_edge_flows_that_must_work_are_allowed(stack: tuple[StackConfig, Captured]) -> None:
    """Clients to both listeners (container ports 443+10000, 80+10000), proxies to xDS, DNS and the
    API (whose namespace admits them), the control plane to the webhook, the controller and certgen to
    the Kubernetes API, Prometheus to both's metrics, and the proxies to HTTP-01 solvers (no zone)."""
    config, captured = stack
    policies = network_policies(captured)
    required = [
        (CLIENT, PROXY, 10443, "TCP"),
        (CLIENT, PROXY, 10080, "TCP"),
        (PROXY, CONTROLLER, 18000, "TCP"),
        (PROXY, KUBE_DNS, 53, "UDP"),
        (PROXY, app_pod(config, "api"), API_PORT, "TCP"),
        (PROXY, SOLVER, 8089, "TCP"),
        (CONTROLLER, KUBE_DNS, 53, "UDP"),
        (CONTROLLER, in_vpc(config), 443, "TCP"),
        (CERTGEN, in_vpc(config), 443, "TCP"),
        (in_vpc(config), CONTROLLER, 9443, "TCP"),
        (PROMETHEUS, PROXY, 19001, "TCP"),
        (PROMETHEUS, CONTROLLER, 19001, "TCP"),
    ]
    blocked = [flow for flow in required if not allowed(policies, *flow)]
    assert not blocked


def test_edge_flows_nothing_needs_are_denied(stack: tuple[StackConfig, Captured]) -> None:
    config, captured = stack
    policies = network_policies(captured)
    forbidden = [
        (CLIENT, CONTROLLER, 18000, "TCP"),
        (CLIENT, PROXY, 19001, "TCP"),
        (CLIENT, PROXY, 19000, "TCP"),
        (CLIENT, SOLVER, 8089, "TCP"),
        (STRANGER, CONTROLLER, 18000, "TCP"),
        (STRANGER, CONTROLLER, 9443, "TCP"),
        (STRANGER, PROXY, 19001, "TCP"),
        (PROXY, CONTROLLER, 18001, "TCP"),
        (PROXY, app_pod(config, "worker"), API_PORT, "TCP"),
        (PROXY, CLIENT, 443, "TCP"),
        (PROXY, in_vpc(config), 443, "TCP"),
        (CONTROLLER, CLIENT, 443, "TCP"),
        (CERTGEN, KUBE_DNS, 53, "UDP"),
        (SOLVER, KUBE_DNS, 53, "UDP"),
        (SOLVER, CLIENT, 443, "TCP"),
        (app_pod(config, "api"), CONTROLLER, 18000, "TCP"),
    ]
    assert not [flow for flow in forbidden if allowed(policies, *flow)]


def test_with_dns01_no_solver_is_reachable(with_zone: tuple[StackConfig, Captured]) -> None:
    _, captured = with_zone
    policies = network_policies(captured)
    assert not allowed(policies, PROXY, SOLVER, 8089)
    assert allowed(policies, CLIENT, PROXY, 10443)


def test_the_controller_chart_waits_for_the_namespace_policies(stack: tuple[StackConfig, Captured]) -> None:
    """Its certgen hook Job and the controller never start in a namespace without them."""
    _, captured = stack
    controller = captured.one(RELEASE, "platform-edge-envoy-gateway")
    edge_policies = [
        r
        for r in captured.of_type(NETWORK_POLICY)
        if captured.inputs(NETWORK_POLICY, r.name)["metadata"]["namespace"] == EDGE
    ]
    assert len(edge_policies) == 5
    assert all(policy.urn in controller.depends_on for policy in edge_policies)


def test_cert_manager_starts_after_the_gateway_api_crds(stack: tuple[StackConfig, Captured]) -> None:
    """With enableGatewayAPI cert-manager does not start without the Gateway API CRDs: on a first
    install its release must wait for the chart that installs them."""
    _, captured = stack
    assert release(captured, "cert-manager")["values"]["config"]["enableGatewayAPI"] is True
    crds = captured.one(RELEASE, "platform-edge-crds-chart")
    assert crds.urn in captured.one(RELEASE, "platform-cert-manager").depends_on
    assert captured.inputs(RELEASE, "platform-edge-crds-chart")["values"]["crds"]["gatewayAPI"]["enabled"]
