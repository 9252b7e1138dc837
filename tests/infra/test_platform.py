"""The platform under mocks: pinned official charts, CRDs before issuers, DNS-01 with IRSA only when a
hosted zone is configured, ingress-nginx behind an NLB with TLS 1.2+, HSTS and the allowed CIDRs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.platform import ACME_SERVERS, CERT_MANAGER_REPO, INGRESS_NGINX_REPO
from infra.config import StackConfig
from stacks.plan import check_policies, resource_entries
from tests.infra.harness import Captured
from tests.infra.k8s_fixtures import (
    CLUSTER_ISSUER,
    NAMESPACE,
    OIDC_PROVIDER_ARN,
    RELEASE,
    compose,
    stack_config,
)

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
    cert_manager, nginx = release(captured, "cert-manager"), release(captured, "ingress-nginx")
    assert cert_manager["repositoryOpts"]["repo"] == CERT_MANAGER_REPO
    assert cert_manager["version"] == config.platform.cert_manager_chart_version
    assert nginx["repositoryOpts"]["repo"] == INGRESS_NGINX_REPO
    assert nginx["version"] == config.platform.ingress_nginx_chart_version
    metrics = release(captured, "metrics-server")
    assert metrics["version"] == config.platform.metrics_server_chart_version
    assert all(r["atomic"] is True for r in (cert_manager, nginx, metrics))


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
        assert spec["acme"]["solvers"] == [{"http01": {"ingress": {"ingressClassName": "nginx"}}}]
    assert not captured.of_type(ROLE)
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
    policy = json.loads(captured.inputs("aws:iam/rolePolicy:RolePolicy")["policy"])
    zones = [s["Resource"] for s in policy["Statement"] if "route53:ChangeResourceRecordSets" in s["Action"]]
    assert zones == [f"arn:aws:route53:::hostedzone/{ZONE}"], "write access to exactly the one zone"
    annotations = release(captured, "cert-manager")["values"]["serviceAccount"]["annotations"]
    # The chart's service account assumes exactly the role declared above (named after it).
    assert ":role/platform-cert-manager-" in annotations["eks.amazonaws.com/role-arn"]


def test_ingress_controller_is_an_nlb_restricted_to_the_allowed_cidrs(
    stack: tuple[StackConfig, Captured],
) -> None:
    config, captured = stack
    controller = release(captured, "ingress-nginx")["values"]["controller"]
    service = controller["service"]
    assert service["type"] == "LoadBalancer"
    assert service["annotations"]["service.beta.kubernetes.io/aws-load-balancer-type"] == "nlb"
    assert service["loadBalancerSourceRanges"] == config.platform.ingress_allowed_cidrs
    assert service["externalTrafficPolicy"] == "Local", "rate limits need the client's address"


def test_ingress_controller_speaks_tls12_plus_with_hsts(stack: tuple[StackConfig, Captured]) -> None:
    _, captured = stack
    controller = release(captured, "ingress-nginx")["values"]["controller"]
    protocols = controller["config"]["ssl-protocols"].split()
    assert protocols and all(p in {"TLSv1.2", "TLSv1.3"} for p in protocols)
    assert controller["config"]["hsts"] == "true" and int(controller["config"]["hsts-max-age"]) >= 31536000
    assert controller["allowSnippetAnnotations"] is False
    assert controller["addHeaders"]["X-Content-Type-Options"] == "nosniff"


def test_add_on_namespaces_are_labelled_for_pod_security(stack: tuple[StackConfig, Captured]) -> None:
    _, captured = stack
    labels = {
        captured.inputs(NAMESPACE, r.name)["metadata"]["name"]: captured.inputs(NAMESPACE, r.name)[
            "metadata"
        ]["labels"]
        for r in captured.of_type(NAMESPACE)
    }
    assert labels["cert-manager"]["pod-security.kubernetes.io/enforce"] == "restricted"
    # The controller binds 80/443 with NET_BIND_SERVICE: baseline enforced, restricted still audited.
    assert labels["ingress-nginx"]["pod-security.kubernetes.io/enforce"] == "baseline"
    assert labels["ingress-nginx"]["pod-security.kubernetes.io/audit"] == "restricted"


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
    policy = json.loads(zone_captured.inputs("aws:iam/rolePolicy:RolePolicy")["policy"])
    assert all(s["Resource"] != "*" for s in policy["Statement"]), "cert-manager needs no zone lookup by name"
