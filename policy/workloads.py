"""Kubernetes workloads and objects: Pod Security Standard ``restricted`` and then some.

Pod specs are found by one helper (:func:`pod_spec`) for Deployments, StatefulSets, DaemonSets,
ReplicaSets, Jobs, CronJobs and bare Pods; container security settings are resolved the way the
kubelet does (the container's securityContext wins over the pod's).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from fnmatch import fnmatchcase
from functools import partial
from typing import Any

from policy.core import (
    Resource,
    as_dict,
    dicts,
    get,
    is_false,
    is_true,
    present,
    resource_policy,
    strings,
)

POD_SPEC_PATHS: Mapping[str, str] = {
    "kubernetes:apps/v1:Deployment": "spec.template.spec",
    "kubernetes:apps/v1:StatefulSet": "spec.template.spec",
    "kubernetes:apps/v1:DaemonSet": "spec.template.spec",
    "kubernetes:apps/v1:ReplicaSet": "spec.template.spec",
    "kubernetes:batch/v1:Job": "spec.template.spec",
    "kubernetes:batch/v1:CronJob": "spec.jobTemplate.spec.template.spec",
    "kubernetes:core/v1:Pod": "spec",
}
WORKLOADS = tuple(POD_SPEC_PATHS)
LONG_RUNNING = (
    "kubernetes:apps/v1:Deployment",
    "kubernetes:apps/v1:StatefulSet",
    "kubernetes:apps/v1:DaemonSet",
)
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
SERVICE = "kubernetes:core/v1:Service"
NAMESPACE = "kubernetes:core/v1:Namespace"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
HELM_TYPES = ("kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart")
PSS_ENFORCE = "pod-security.kubernetes.io/enforce"
ALLOWED_ADDED_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})

Container = Mapping[str, Any]


def pod_spec(resource_type: str, props: Mapping[str, Any]) -> Mapping[str, Any]:
    """The pod spec of a workload object ({} for anything else)."""
    path = POD_SPEC_PATHS.get(resource_type)
    return as_dict(get(props, path)) if path else {}


def app_containers(spec: Mapping[str, Any]) -> list[Container]:
    """The pod's long-running containers (``containers``: the ones probes and resources apply to)."""
    return dicts(spec.get("containers"))


def containers(spec: Mapping[str, Any]) -> list[Container]:
    """Every container of a pod spec: the app's, the init containers and any ephemeral (debug) ones."""
    return app_containers(spec) + dicts(spec.get("initContainers")) + dicts(spec.get("ephemeralContainers"))


def effective(spec: Mapping[str, Any], container: Container, field: str) -> Any:
    """A security setting as the kubelet applies it: the container's, else the pod's."""
    value = get(container, f"securityContext.{field}")
    return value if value is not None else get(spec, f"securityContext.{field}")


ContainerProblem = Callable[[Mapping[str, Any], Container], str | None]


def per_container(problem: ContainerProblem, r: Resource) -> Iterator[str]:
    """``problem`` (given the pod spec and a container) for every container of a workload.

    Policies bind it with ``functools.partial``, so the loop runs when the engine checks a resource.
    """
    spec = pod_spec(r.type, r.props)
    for container in containers(spec):
        message = problem(spec, container)
        if message:
            yield f"{r.name}: container {container.get('name', '?')} {message}."


def _run_as_non_root(spec: Mapping[str, Any], c: Container) -> str | None:
    if effective(spec, c, "runAsUser") in (0, 0.0):
        return "runs as UID 0"
    if not is_true(effective(spec, c, "runAsNonRoot")):
        return "does not set runAsNonRoot=true"
    return None


def _not_privileged(_spec: Mapping[str, Any], c: Container) -> str | None:
    return "is privileged" if is_true(get(c, "securityContext.privileged")) else None


def _no_privilege_escalation(_spec: Mapping[str, Any], c: Container) -> str | None:
    if not is_false(get(c, "securityContext.allowPrivilegeEscalation")):
        return "does not set allowPrivilegeEscalation=false"
    return None


def _capabilities(_spec: Mapping[str, Any], c: Container) -> str | None:
    dropped = {s.upper() for s in strings(get(c, "securityContext.capabilities.drop"))}
    added = {s.upper() for s in strings(get(c, "securityContext.capabilities.add"))}
    if "ALL" not in dropped:
        return "does not drop ALL capabilities"
    extra = sorted(added - ALLOWED_ADDED_CAPABILITIES)
    return f"adds capabilities {', '.join(extra)}" if extra else None


def _read_only_root(_spec: Mapping[str, Any], c: Container) -> str | None:
    if not is_true(get(c, "securityContext.readOnlyRootFilesystem")):
        return "has a writable root filesystem (readOnlyRootFilesystem is not true)"
    return None


def _seccomp(spec: Mapping[str, Any], c: Container) -> str | None:
    profile = get(as_dict(effective(spec, c, "seccompProfile")), "type")
    if profile not in ("RuntimeDefault", "Localhost"):
        return f"has seccompProfile {profile or 'unset (Unconfined)'}"
    return None


def _resources_problem(require_cpu_limit: bool) -> Callable[[Mapping[str, Any], Container], str | None]:
    def problem(_spec: Mapping[str, Any], c: Container) -> str | None:
        wanted = ["requests.cpu", "requests.memory", "limits.memory"] + (
            ["limits.cpu"] if require_cpu_limit else []
        )
        missing = [w for w in wanted if not present(get(c.get("resources"), w))]
        return f"sets no resources.{', resources.'.join(missing)}" if missing else None

    return problem


def _resources(r: Resource) -> Iterator[str]:
    return per_container(_resources_problem(r.settings.require_cpu_limits), r)


def image_tag(image: str) -> str | None:
    """The tag of an image reference (None when it has none)."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def _no_latest(_spec: Mapping[str, Any], c: Container) -> str | None:
    image = str(c.get("image") or "")
    if "@" not in image and image_tag(image) in (None, "latest"):
        return f"uses the mutable image {image or '(none)'} (':latest' or no tag)"
    return None


def _digest(_spec: Mapping[str, Any], c: Container) -> str | None:
    image = str(c.get("image") or "")
    return None if "@sha256:" in image else f"uses image {image or '(none)'} by tag, not by digest"


def _probes(r: Resource) -> Iterator[str]:
    if r.type not in LONG_RUNNING:
        return
    for c in app_containers(pod_spec(r.type, r.props)):
        missing = [p for p in ("livenessProbe", "readinessProbe") if not present(c.get(p))]
        if missing:
            yield f"{r.name}: container {c.get('name', '?')} has no {' and no '.join(missing)}."


def _host_namespaces(r: Resource) -> Iterator[str]:
    spec = pod_spec(r.type, r.props)
    shared = [f for f in ("hostNetwork", "hostPID", "hostIPC") if is_true(spec.get(f))]
    if shared:
        yield f"{r.name} shares the node's namespaces ({', '.join(shared)}=true)."
    for c in containers(spec):
        if any(present(p.get("hostPort")) for p in dicts(c.get("ports"))):
            yield f"{r.name}: container {c.get('name', '?')} binds a hostPort."


def _host_path(r: Resource) -> Iterator[str]:
    for volume in dicts(pod_spec(r.type, r.props).get("volumes")):
        if present(volume.get("hostPath")):
            yield f"{r.name} mounts the node's filesystem (hostPath volume {volume.get('name', '?')})."


def _ingress_tls(r: Resource) -> Iterator[str]:
    tls = dicts(get(r.props, "spec.tls"))
    if not tls:
        yield f"Ingress {r.name} has no spec.tls: it serves plain HTTP."
        return
    covered = {h for t in tls for h in strings(t.get("hosts"))}
    uncovered = [
        h for rule in dicts(get(r.props, "spec.rules")) for h in strings(rule.get("host")) if h not in covered
    ]
    if uncovered:
        yield f"Ingress {r.name} serves host(s) {', '.join(uncovered)} without a TLS entry."


def object_ref(r: Resource) -> str:
    namespace = get(r.props, "metadata.namespace") or "default"
    return f"{namespace}/{get(r.props, 'metadata.name') or r.name}"


def _no_load_balancer(r: Resource) -> Iterator[str]:
    if get(r.props, "spec.type") != "LoadBalancer":
        return
    ref = object_ref(r)
    if not any(fnmatchcase(ref, pattern) for pattern in r.settings.load_balancer_services):
        yield f"Service {ref} is of type LoadBalancer: it gets its own internet-facing load balancer."


def _pss_restricted(r: Resource) -> Iterator[str]:
    name = str(get(r.props, "metadata.name") or r.name)
    if name in r.settings.pss_exempt_namespaces:
        return
    level = get(r.props, "metadata.labels") and as_dict(get(r.props, "metadata.labels")).get(PSS_ENFORCE)
    if level != "restricted":
        yield f"Namespace {name} enforces Pod Security Standard {level or '(none)'}, not 'restricted'."


SENSITIVE_KEY = re.compile(
    r"pass(word|wd)?|secret|token|api[-_.]?key|private[-_.]?key|credential", re.IGNORECASE
)
# Keys that name a secret or tune how secrets are handled, not hold one: ``*_SECRET_ARN``,
# ``TENANT_SECRET_PREFIX``, ``SECRETS_CACHE_TTL_SECONDS``.
REFERENCE_KEY = re.compile(
    r"[-_.](arn|id|name|names|url|uri|file|path|ref|region|ttl|header|prefix|seconds|timeout)$", re.IGNORECASE
)
SECRET_VALUE = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----|://[^/\s:@]*:[^/\s@]+@")


def _no_secrets_in_config_map(r: Resource) -> Iterator[str]:
    data = {**as_dict(r.props.get("data")), **as_dict(r.props.get("binaryData"))}
    for key, value in data.items():
        if SENSITIVE_KEY.search(key) and not REFERENCE_KEY.search(key) and not str(value).startswith("arn:"):
            yield f"ConfigMap {r.name} key {key} looks like a secret."
        elif SECRET_VALUE.search(str(value)):
            yield f"ConfigMap {r.name} key {key} holds a credential (private key or password in a URL)."


# libpq's only mode that checks the CA and the host name; a URL's own sslmode wins over DATABASE_SSLMODE.
VERIFIED_SSLMODE = "verify-full"
_URL_SSLMODE = re.compile(r"[?&]sslmode=([a-z-]+)")
_WEAK_REDIS_TLS = re.compile(r"[?&](ssl_cert_reqs=(none|optional)|ssl_check_hostname=false)", re.IGNORECASE)


def _database_tls(name: str, data: Mapping[str, Any]) -> Iterator[str]:
    if "DATABASE_HOST" not in data and "DATABASE_URL" not in data:
        return
    match = _URL_SSLMODE.search(str(data.get("DATABASE_URL", "")))
    mode = match.group(1) if match else data.get("DATABASE_SSLMODE")
    if mode != VERIFIED_SSLMODE:
        yield f"ConfigMap {name} connects to PostgreSQL with sslmode {mode or 'unset'}, not {VERIFIED_SSLMODE}."
    if not data.get("DATABASE_SSLROOTCERT"):
        yield f"ConfigMap {name} names no DATABASE_SSLROOTCERT to verify the database's certificate against."


def _redis_tls(name: str, data: Mapping[str, Any]) -> Iterator[str]:
    if "REDIS_HOST" in data and str(data.get("REDIS_TLS", "")).lower() != "true":
        yield f"ConfigMap {name} connects to Redis without REDIS_TLS=true."
    url = str(data.get("REDIS_URL", ""))
    if url and (not url.startswith("rediss://") or _WEAK_REDIS_TLS.search(url)):
        yield f"ConfigMap {name} REDIS_URL does not use verified TLS (rediss:// with certificate checks)."


def _verified_backend_tls(r: Resource) -> Iterator[str]:
    data = as_dict(r.props.get("data"))
    yield from _database_tls(r.name, data)
    yield from _redis_tls(r.name, data)


def _helm_pinned(r: Resource) -> Iterator[str]:
    version = str(r.props.get("version") or "")
    if not version or re.search(r"[*^~<>|x]| ", version.lower()):
        yield f"Helm release {r.name} does not pin its chart version ({version or 'unset'})."


POLICIES = [
    resource_policy(
        "k8s-run-as-non-root",
        severity="high",
        controls=("SOC2 CC6.8",),
        types=WORKLOADS,
        description="A container running as root turns any container escape into root on the node.",
        remediation="set securityContext.runAsNonRoot=true and a non-zero runAsUser on the pod or every container.",
        check=partial(per_container, _run_as_non_root),
    ),
    resource_policy(
        "k8s-no-privileged",
        severity="critical",
        controls=(
            "CIS-EKS 4.2.1",
            "SOC2 CC6.8",
        ),
        types=WORKLOADS,
        description="A privileged container has every device and capability of the node.",
        remediation="remove securityContext.privileged=true.",
        check=partial(per_container, _not_privileged),
    ),
    resource_policy(
        "k8s-no-privilege-escalation",
        severity="high",
        controls=(
            "CIS-EKS 4.2.5",
            "SOC2 CC6.8",
        ),
        types=WORKLOADS,
        description="Unless allowPrivilegeEscalation=false, setuid binaries can gain more privileges than the process started with.",
        remediation="set securityContext.allowPrivilegeEscalation=false on every container.",
        check=partial(per_container, _no_privilege_escalation),
    ),
    resource_policy(
        "k8s-drop-all-capabilities",
        severity="medium",
        controls=("SOC2 CC6.8",),
        types=WORKLOADS,
        description="Default Linux capabilities (NET_RAW, ...) are more than an application needs.",
        remediation="set securityContext.capabilities.drop=['ALL'] and add back at most NET_BIND_SERVICE.",
        check=partial(per_container, _capabilities),
    ),
    resource_policy(
        "k8s-read-only-root-filesystem",
        severity="medium",
        controls=("SOC2 CC6.8",),
        types=WORKLOADS,
        description="A writable root filesystem lets an attacker drop tools and persist inside the container.",
        remediation="set securityContext.readOnlyRootFilesystem=true and mount an emptyDir where the app writes (/tmp).",
        check=partial(per_container, _read_only_root),
    ),
    resource_policy(
        "k8s-seccomp-runtime-default",
        severity="medium",
        controls=("SOC2 CC6.8",),
        types=WORKLOADS,
        description="Without a seccomp profile every syscall is open to the container.",
        remediation="set securityContext.seccompProfile.type='RuntimeDefault' on the pod.",
        check=partial(per_container, _seccomp),
    ),
    resource_policy(
        "k8s-resources-set",
        severity="low",
        controls=("SOC2 A1.1",),
        types=WORKLOADS,
        description="Containers without requests and limits starve their neighbours and make scheduling guesswork.",
        remediation="set resources.requests.cpu/memory and resources.limits.memory (limits.cpu too when requireCpuLimits).",
        check=_resources,
    ),
    resource_policy(
        "k8s-no-latest-image",
        severity="medium",
        controls=("SOC2 CC8.1",),
        types=WORKLOADS,
        description="':latest' (or no tag) changes under a running deployment and defeats rollbacks.",
        remediation="reference images by digest (repo@sha256:...), e.g. the digest the image build returns.",
        check=partial(per_container, _no_latest),
    ),
    resource_policy(
        "k8s-image-digest",
        severity="medium",
        controls=("SOC2 CC8.1",),
        types=WORKLOADS,
        description="A tag can be re-pointed; only a digest guarantees the image that was built and scanned is the one that runs.",
        remediation="reference images as <repository>@sha256:<digest>.",
        check=partial(per_container, _digest),
    ),
    resource_policy(
        "k8s-probes",
        severity="low",
        controls=("SOC2 A1.2",),
        types=LONG_RUNNING,
        description="Without liveness and readiness probes, hung pods keep receiving traffic and are never restarted.",
        remediation="give every container a livenessProbe (no dependency checks) and a readinessProbe.",
        check=_probes,
    ),
    resource_policy(
        "k8s-no-host-namespaces",
        severity="high",
        controls=(
            "CIS-EKS 4.2.2",
            "CIS-EKS 4.2.3",
            "CIS-EKS 4.2.4",
            "SOC2 CC6.8",
        ),
        types=WORKLOADS,
        description="hostNetwork/hostPID/hostIPC and hostPort break the pod's isolation from the node.",
        remediation="remove hostNetwork, hostPID, hostIPC and hostPort; expose the pod through a Service.",
        check=_host_namespaces,
    ),
    resource_policy(
        "k8s-no-host-path",
        severity="high",
        controls=("SOC2 CC6.8",),
        types=WORKLOADS,
        description="A hostPath volume gives the pod the node's filesystem (kubelet credentials, container runtime socket).",
        remediation="use emptyDir, a ConfigMap/Secret projection or a PersistentVolumeClaim instead of hostPath.",
        check=_host_path,
    ),
    resource_policy(
        "k8s-ingress-tls",
        severity="high",
        controls=(
            "CIS-EKS 5.4.5",
            "PCI-DSS 4.2.1",
            "SOC2 CC6.7",
        ),
        types=[INGRESS],
        description="An Ingress without TLS serves webhooks and API tokens in clear text.",
        remediation="add spec.tls with every rule's host and a cert-manager issuer annotation.",
        check=_ingress_tls,
    ),
    resource_policy(
        "k8s-no-load-balancer-service",
        severity="high",
        controls=("SOC2 CC6.6",),
        types=[SERVICE],
        description="Each LoadBalancer Service is a new internet entry point that bypasses the edge (TLS, headers, limits).",
        remediation="use type ClusterIP and publish through an HTTPRoute on the Gateway, whose proxies' load balancer Envoy Gateway creates; a reviewed exception goes in knob loadBalancerServices.",
        check=_no_load_balancer,
    ),
    resource_policy(
        "k8s-namespace-pss-restricted",
        severity="high",
        controls=(
            "CIS-EKS 4.2.1",
            "SOC2 CC6.8",
        ),
        types=[NAMESPACE],
        description="A namespace that does not enforce Pod Security Standard 'restricted' admits privileged pods.",
        remediation="label the namespace pod-security.kubernetes.io/enforce=restricted (exemptions: knob pssExemptNamespaces).",
        check=_pss_restricted,
    ),
    resource_policy(
        "k8s-no-secrets-in-configmap",
        severity="critical",
        controls=(
            "CIS-EKS 4.4.2",
            "PCI-DSS 8.6.2",
            "SOC2 CC6.1",
        ),
        types=[CONFIG_MAP],
        description="ConfigMaps are readable by anyone with view rights and are not encrypted like Secrets.",
        remediation="keep only references (secret ARNs/names) in ConfigMaps; the pods read secret values from AWS Secrets Manager.",
        check=_no_secrets_in_config_map,
    ),
    resource_policy(
        "k8s-app-config-verified-tls",
        severity="critical",
        # Not PCI DSS 4.2.1: that requirement is about open, public networks; this traffic stays in the VPC.
        controls=("SOC2 CC6.7",),
        types=[CONFIG_MAP],
        description=(
            "A service that does not verify its database's or broker's certificate and host name sends its "
            "IAM tokens and AUTH token to whoever answers inside the VPC."
        ),
        remediation=(
            "set DATABASE_SSLMODE=verify-full with DATABASE_SSLROOTCERT (the RDS CA bundle in the images), "
            "and REDIS_TLS=true (or a rediss:// URL without ssl_cert_reqs=none / ssl_check_hostname=false)."
        ),
        check=_verified_backend_tls,
    ),
    resource_policy(
        "helm-chart-version-pinned",
        severity="medium",
        controls=("SOC2 CC8.1",),
        types=HELM_TYPES,
        description="An unpinned chart version upgrades cluster add-ons unreviewed on the next deploy.",
        remediation="set version to an exact chart version (e.g. 4.13.3).",
        check=_helm_pinned,
    ),
]
