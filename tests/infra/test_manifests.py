"""The rendered Kubernetes manifests: schema-valid for the cluster's version and clean under checkov.

``python -m stacks plan <stack> --out <dir>`` runs as a subprocess (exactly what ``make plan`` runs)
and writes one YAML per object to ``<dir>/manifests/``. Each is validated against the Kubernetes
OpenAPI schema of the stack's ``cluster.kubernetesVersion`` (kubernetes-validate, strict: unknown
fields are errors), custom resources (Gateway API, cert-manager, Envoy Gateway, prometheus-operator)
against their CRD schemas (tests/schemas/), then checkov scans the directory with the repository's
``.checkov.yaml``.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from infra.config import REPO_ROOT, load_stack_file
from stacks.plan import write_manifests
from tests.infra.k8s_fixtures import compose, stack_config

CHECKOV_CONFIG = REPO_ROOT / ".checkov.yaml"
# Gateway API, cert-manager and Envoy Gateway objects are validated against the CRD schemas published as
# the pinned npm packages in tests/schemas/ (installed by `make pytest`). CRD schemas do not forbid
# unknown fields (the API server prunes them silently), so the fields that matter are also asserted one
# by one in test_platform.py and test_workloads.py.
CRD_SCHEMAS = REPO_ROOT / "tests" / "schemas"
GATEWAY_API_AND_CERT_MANAGER = {
    "Gateway",
    "GatewayClass",
    "HTTPRoute",
    "ReferenceGrant",
    "Certificate",
    "ClusterIssuer",
}
ENVOY_GATEWAY = {"EnvoyProxy", "ClientTrafficPolicy", "BackendTrafficPolicy", "SecurityPolicy"}
# npm @kubernetes-models/prometheus-operator 5.0.1 carries the operator's v0.90.1 CRDs; the pinned
# kube-prometheus-stack 79.x installs v0.86 ones (80.0.0 moved to v0.87), and no package carries 0.86.
# Between the two, ServiceMonitor and PrometheusRule only gained optional fields, none used here; the
# PodMonitor uses only fields both have (a named container port, path, interval, scheme, relabelings).
PROMETHEUS_OPERATOR = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
KEDA = {"ScaledObject", "TriggerAuthentication"}
CRD_CHECKED = GATEWAY_API_AND_CERT_MANAGER | ENVOY_GATEWAY | KEDA | PROMETHEUS_OPERATOR
# Custom resources have no schema in the Kubernetes OpenAPI documents: the kinds in CRD_CHECKED are
# validated against their published CRD schemas below (the prometheus-operator ones in the full plan,
# the only composition with monitoring); their fields are asserted one by one in the tests named here.
CUSTOM_KINDS = {
    "ClusterIssuer": "cert-manager CRD (installed by the chart); checked in test_platform.py",
    "ServiceMonitor": "prometheus-operator CRD (kube-prometheus-stack); checked in test_monitoring.py",
    "PodMonitor": "prometheus-operator CRD (kube-prometheus-stack); the edge proxies, test_monitoring.py",
    "PrometheusRule": "prometheus-operator CRD (kube-prometheus-stack); test_monitoring.py, promtool",
    "Certificate": "cert-manager CRD; checked in test_platform.py",
    "GatewayClass": "Gateway API CRD (gateway-crds-helm); checked in test_platform.py",
    "Gateway": "Gateway API CRD (gateway-crds-helm); checked in test_platform.py",
    "HTTPRoute": "Gateway API CRD (gateway-crds-helm); checked in test_platform.py and test_workloads.py",
    "EnvoyProxy": "Envoy Gateway CRD (gateway-crds-helm); checked in test_platform.py",
    "ClientTrafficPolicy": "Envoy Gateway CRD (gateway-crds-helm); checked in test_platform.py",
    "BackendTrafficPolicy": "Envoy Gateway CRD (gateway-crds-helm); checked in test_workloads.py",
    "SecurityPolicy": "Envoy Gateway CRD (gateway-crds-helm); CORS, from app.corsOrigins",
    "ScaledObject": "KEDA CRD (kedacore/keda chart); checked in test_scaling.py",
    "TriggerAuthentication": "KEDA CRD (kedacore/keda chart); checked in test_scaling.py",
}
EXPECTED = {
    ("Namespace", None, "ai-agents"),
    ("ServiceAccount", "ai-agents", "api"),
    ("ServiceAccount", "ai-agents", "worker"),
    ("ServiceAccount", "ai-agents", "migrations"),
    ("Deployment", "ai-agents", "api"),
    ("Deployment", "ai-agents", "worker"),
    ("Service", "ai-agents", "api"),
    ("Service", "ai-agents", "worker"),
    ("HTTPRoute", "ai-agents", "api"),
    ("HTTPRoute", "ai-agents", "api-webhook"),
    ("BackendTrafficPolicy", "ai-agents", "api-webhook"),
    ("Gateway", "envoy-gateway-system", "edge"),
    ("HTTPRoute", "envoy-gateway-system", "https-redirect"),
    ("ClientTrafficPolicy", "envoy-gateway-system", "edge-client"),
    ("Certificate", "envoy-gateway-system", "api-tls"),
    ("HorizontalPodAutoscaler", "ai-agents", "api"),
    # KEDA creates and owns the worker's HPA (keda-hpa-worker) from this ScaledObject.
    ("ScaledObject", "ai-agents", "worker"),
    ("TriggerAuthentication", "ai-agents", "redis-auth"),
    ("ResourceQuota", "ai-agents", "app"),
    ("LimitRange", "ai-agents", "app"),
    ("Namespace", None, "keda"),
    ("NetworkPolicy", "keda", "default-deny"),
    ("PodDisruptionBudget", "ai-agents", "api"),
    ("PodDisruptionBudget", "ai-agents", "worker"),
    ("NetworkPolicy", "ai-agents", "default-deny"),
    ("ClusterIssuer", None, "letsencrypt-staging"),
    ("ClusterIssuer", None, "letsencrypt-production"),
}


def checkov() -> str:
    """checkov lives in its own environment (.tools/checkov, made by `make pytest`), or on PATH."""
    local = REPO_ROOT / ".tools" / "checkov" / "bin" / "checkov"
    found = str(local) if local.exists() else shutil.which("checkov")
    if not found:
        pytest.fail("checkov is not installed: run `make pytest` (it installs .tools/checkov)")
    return found


def plan_manifests(stack: str, out: Path) -> Path:
    result = subprocess.run(
        [sys.executable, "-m", "stacks", "plan", stack, "--out", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out / "manifests"


def load(directory: Path) -> dict[Path, dict[str, Any]]:
    return {
        path: yaml.safe_load(path.read_text(encoding="utf-8")) for path in sorted(directory.glob("*.yaml"))
    }


def identity(obj: dict[str, Any]) -> tuple[str, str | None, str]:
    return obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"]


def schema_errors(objects: dict[Path, dict[str, Any]], kubernetes_version: str) -> list[str]:
    errors: list[str] = []
    for path, obj in objects.items():
        if obj["kind"] in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(obj, f"{kubernetes_version}.0", strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{path.name}: {'.'.join(str(p) for p in exc.path)}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(
                f"{path.name}: no schema for {obj['apiVersion']} {obj['kind']} in {kubernetes_version}"
            )
    return errors


def crd_schema_errors(objects: list[dict[str, Any]]) -> dict[str, list[str]]:
    """``{"errors": [...], "unchecked": [...]}`` from tests/schemas/validate.mjs for ``objects``."""
    if not (CRD_SCHEMAS / "node_modules").is_dir():
        pytest.fail("the CRD schema packages are not installed: run `make pytest` (npm ci in tests/schemas)")
    result = subprocess.run(
        ["node", str(CRD_SCHEMAS / "validate.mjs")],
        input=json.dumps(objects),
        cwd=CRD_SCHEMAS,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def checkov_failures(directory: Path) -> list[str]:
    result = subprocess.run(
        [
            checkov(),
            "--config-file",
            str(CHECKOV_CONFIG),
            "--directory",
            str(directory),
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"},
    )
    report: Any = json.loads(result.stdout) if result.stdout.strip().startswith(("{", "[")) else None
    assert report is not None, (
        f"checkov produced no report (exit {result.returncode}): {result.stderr[-2000:]}"
    )
    reports = report if isinstance(report, list) else [report]
    failures: list[str] = []
    for entry in reports:
        for check in entry.get("results", {}).get("failed_checks", []):
            failures.append(
                f"{check['check_id']} {check['check_name']}: {check['file_path']} {check['resource']}"
            )
    return failures


@pytest.fixture(scope="module", params=["staging", "production"])
def planned(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    stack = str(request.param)
    out = tmp_path_factory.mktemp(f"plan-{stack}")
    manifests = plan_manifests(stack, out)
    plan = json.loads((out / "plan.json").read_text(encoding="utf-8"))
    assert any(r["type"] == "ai-agents:workloads:Workloads" for r in plan["resources"]), (
        "no workloads planned"
    )
    return stack, manifests


@pytest.fixture(scope="module", params=["staging", "production"])
def composed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """The platform, images and workloads composed standalone, written as the plan writes them."""
    stack = str(request.param)
    captured = compose(stack_config(stack))
    resources = [
        {"type": r.type, "name": r.name, "custom": r.custom, "props": r.inputs}
        for r in captured.registrations
    ]
    directory = tmp_path_factory.mktemp(f"composed-{stack}")
    write_manifests(resources, directory)
    return stack, directory


def test_plan_manifests_are_complete(planned: tuple[str, Path]) -> None:
    _, directory = planned
    present = {identity(obj) for obj in load(directory).values()}
    missing = EXPECTED - present
    assert not missing, f"the plan renders no {sorted(missing, key=str)}"


def test_plan_manifests_match_the_schemas(planned: tuple[str, Path]) -> None:
    stack, directory = planned
    objects = load(directory)
    assert objects, "the plan wrote no manifests"
    assert not schema_errors(objects, load_stack_file(stack).cluster.kubernetes_version)


def test_plan_manifests_pass_checkov(planned: tuple[str, Path]) -> None:
    _, directory = planned
    assert not checkov_failures(directory)


def test_composed_manifests_match_the_schemas(composed: tuple[str, Path]) -> None:
    stack, directory = composed
    objects = load(directory)
    assert {identity(obj) for obj in objects.values()} >= EXPECTED
    assert not schema_errors(objects, load_stack_file(stack).cluster.kubernetes_version)


def test_custom_resources_match_their_published_crd_schemas(composed: tuple[str, Path]) -> None:
    _, directory = composed
    objects = [o for o in load(directory).values() if o["kind"] in CRD_CHECKED]
    assert {o["kind"] for o in objects} >= {
        "Gateway",
        "GatewayClass",
        "HTTPRoute",
        "Certificate",
        "ClusterIssuer",
        *ENVOY_GATEWAY,
        *KEDA,
    }
    verdict = crd_schema_errors(objects)
    assert verdict == {"errors": [], "unchecked": []}


def test_monitoring_custom_resources_match_their_published_crd_schemas(planned: tuple[str, Path]) -> None:
    _, directory = planned
    objects = [o for o in load(directory).values() if o["kind"] in PROMETHEUS_OPERATOR]
    assert {identity(o) for o in objects} == {
        ("ServiceMonitor", "ai-agents", "api"),
        ("ServiceMonitor", "ai-agents", "worker"),
        ("ServiceMonitor", "cert-manager", "cert-manager"),
        ("ServiceMonitor", "observability", "otel-collector"),
        ("PodMonitor", "envoy-gateway-system", "edge-proxy"),
        ("PrometheusRule", "monitoring", "ai-agents"),
    }
    assert crd_schema_errors(objects) == {"errors": [], "unchecked": []}


def test_crd_schema_validation_catches_a_rule_duration_prometheus_cannot_parse(
    planned: tuple[str, Path],
) -> None:
    _, directory = planned
    rule = copy.deepcopy(next(o for o in load(directory).values() if o["kind"] == "PrometheusRule"))
    rule["spec"]["groups"][0]["rules"][0]["for"] = "2 minutes"  # Prometheus durations are 2m
    (error,) = crd_schema_errors([rule])["errors"]
    assert "rules/0/for" in error


def test_crd_schema_validation_catches_a_pod_monitor_scheme_prometheus_does_not_know(
    planned: tuple[str, Path],
) -> None:
    _, directory = planned
    monitor = copy.deepcopy(next(o for o in load(directory).values() if o["kind"] == "PodMonitor"))
    monitor["spec"]["podMetricsEndpoints"][0]["scheme"] = "tcp"  # http or https only
    (error,) = crd_schema_errors([monitor])["errors"]
    assert "podMetricsEndpoints/0/scheme" in error


def test_crd_schema_validation_catches_a_tls_version_envoy_does_not_know(composed: tuple[str, Path]) -> None:
    _, directory = composed
    policy = copy.deepcopy(next(o for o in load(directory).values() if o["kind"] == "ClientTrafficPolicy"))
    policy["spec"]["tls"]["minVersion"] = "1.1.0"  # not one of Envoy Gateway's enum values
    (error,) = crd_schema_errors([policy])["errors"]
    assert "tls/minVersion" in error


def test_crd_schema_validation_catches_a_wrong_path_match_type(composed: tuple[str, Path]) -> None:
    _, directory = composed
    route = copy.deepcopy(next(o for o in load(directory).values() if o["kind"] == "HTTPRoute"))
    route["spec"]["rules"][0]["matches"] = [{"path": {"type": "Prefix", "value": "/api"}}]  # Ingress' word
    (error,) = crd_schema_errors([route])["errors"]
    assert "path/type" in error


def test_composed_manifests_pass_checkov(composed: tuple[str, Path]) -> None:
    _, directory = composed
    assert not checkov_failures(directory)


def test_schema_validation_catches_an_unknown_field(composed: tuple[str, Path]) -> None:
    _, directory = composed
    objects = load(directory)
    path, deployment = next((p, o) for p, o in objects.items() if o["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFS"] = True  # a typo
    assert schema_errors({path: deployment}, "1.33")


def test_checkov_catches_a_privileged_container(composed: tuple[str, Path], tmp_path: Path) -> None:
    _, directory = composed
    deployment = next(o for o in load(directory).values() if o["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"] = True
    (tmp_path / "deployment.yaml").write_text(yaml.safe_dump(deployment), encoding="utf-8")
    assert any("CKV_K8S_16" in failure for failure in checkov_failures(tmp_path))
