"""The internet edge as Gateway API objects: HTTPS only, no internal paths, TLS 1.2+, one load balancer,
no cross-namespace backend without the target namespace's consent, a default-deny namespace around
the gateway.

Kinds are matched by the plan's type tokens (``kubernetes:<group>/<version>:<Kind>``) for every served
version of the Gateway API group, so a v1beta1 object is held to the same rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from policy.core import (
    Resource,
    StackResource,
    as_dict,
    as_list,
    dicts,
    get,
    resource_policy,
    stack_policy,
)
from policy.settings import PolicySettings
from policy.workloads import HELM_TYPES, object_ref

GATEWAY_GROUP = "gateway.networking.k8s.io"
VERSIONS = ("v1", "v1beta1")
GATEWAYS = tuple(f"kubernetes:{GATEWAY_GROUP}/{v}:Gateway" for v in VERSIONS)
HTTP_ROUTES = tuple(f"kubernetes:{GATEWAY_GROUP}/{v}:HTTPRoute" for v in VERSIONS)
REFERENCE_GRANTS = tuple(
    f"kubernetes:{GATEWAY_GROUP}/{v}:ReferenceGrant" for v in ("v1", "v1beta1", "v1alpha2")
)
CLIENT_TRAFFIC_POLICY = "kubernetes:gateway.envoyproxy.io/v1alpha1:ClientTrafficPolicy"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
INTERNAL_PATHS = ("/metrics",)
WEAK_TLS = frozenset({"1.0", "1.1"})


def namespace_of(props: Mapping[str, Any]) -> str:
    return str(get(props, "metadata.namespace") or "default")


def name_of(r: StackResource | Resource) -> str:
    return str(get(r.props, "metadata.name") or r.name)


def forwards(rule: Mapping[str, Any]) -> bool:
    """A rule that sends requests to a backend (a redirect-only rule has no backendRefs)."""
    return bool(dicts(rule.get("backendRefs")))


def covers(match: Mapping[str, Any], path: str) -> bool:
    """Whether an HTTPRoute match admits ``path`` (no path match means PathPrefix /)."""
    kind = get(match, "path.type")  # unset: PathPrefix, the last case
    value = str(get(match, "path.value") or "/")
    if kind == "Exact":
        return value == path
    if kind == "RegularExpression":
        try:
            return re.fullmatch(value, path) is not None
        except re.error:
            return True  # a pattern the checker cannot read is not proven safe
    # A trailing slash is ignored, so "/" leaves "" and admits every path (they all start with "/").
    return path == value.rstrip("/") or path.startswith(value.rstrip("/") + "/")


def _no_internal_paths(r: Resource) -> Iterator[str]:
    for rule in dicts(get(r.props, "spec.rules")):
        if not forwards(rule):
            continue
        matches = dicts(rule.get("matches")) or [{}]
        for path in INTERNAL_PATHS:
            routed = [m for m in matches if covers(m, path)]
            if routed:
                how = get(routed[0], "path.type") or "PathPrefix"
                value = get(routed[0], "path.value") or "/"
                yield f"HTTPRoute {object_ref(r)} routes {path} to a backend ({how} {value})."


def _tls_minimum(r: Resource) -> Iterator[str]:
    tls = as_dict(get(r.props, "spec.tls"))
    for field in ("minVersion", "maxVersion"):
        version = str(tls.get(field) or "")
        if version in WEAK_TLS:
            yield f"ClientTrafficPolicy {object_ref(r)} sets tls.{field} {version}: below TLS 1.2."


def _service_type_load_balancer(value: Any) -> bool:
    """Anywhere in Helm values: a ``type: LoadBalancer`` (a chart's Service)."""
    mapping = as_dict(value)
    if mapping:
        return mapping.get("type") == "LoadBalancer" or any(
            _service_type_load_balancer(v) for v in mapping.values()
        )
    return any(_service_type_load_balancer(v) for v in as_list(value))


def _load_balancer_only_gateway(r: Resource) -> Iterator[str]:
    # Services declared directly are k8s-no-load-balancer-service's; a chart's Service is only visible
    # in its values.
    if _service_type_load_balancer(r.props.get("values")):
        yield f"Helm release {r.name} creates a Service of type LoadBalancer: only the gateway's proxies get one."


def _names_a_gateway(ref: Mapping[str, Any]) -> bool:
    """A parentRef to a Gateway: kind and group default to Gateway and gateway.networking.k8s.io, but a
    group set to "" is the core group (a mesh route's Service parent), not the Gateway API's."""
    group = ref.get("group")
    return (ref.get("kind") or "Gateway") == "Gateway" and (
        GATEWAY_GROUP if group is None else group
    ) == GATEWAY_GROUP


def parent_gateways(route: StackResource) -> list[tuple[str, str, str | None, Any]]:
    """(namespace, name, sectionName, port) of each Gateway an HTTPRoute attaches to."""
    own = namespace_of(route.props)
    return [
        (str(ref.get("namespace") or own), str(ref.get("name")), ref.get("sectionName"), ref.get("port"))
        for ref in dicts(get(route.props, "spec.parentRefs"))
        if _names_a_gateway(ref)
    ]


def redirects_to_https(rule: Mapping[str, Any]) -> bool:
    return not forwards(rule) and any(
        f.get("type") == "RequestRedirect" and get(f, "requestRedirect.scheme") == "https"
        for f in dicts(rule.get("filters"))
    )


def _under_wildcard(pattern: str, hostname: str) -> bool:
    """``*.example.com`` covers every name ending in ``.example.com`` (wildcards included), not example.com."""
    return pattern.startswith("*.") and hostname.endswith(pattern[1:])


def hostnames_intersect(listener: str | None, route: Sequence[str]) -> bool:
    """Whether a route with hostnames ``route`` is accepted on a listener with hostname ``listener``: an
    unset side matches everything, otherwise one hostname must equal the listener's or fall under it, or
    cover it with its own wildcard."""
    if not listener or not route:
        return True
    return any(
        host == listener or _under_wildcard(listener, host) or _under_wildcard(host, listener)
        for host in route
    )


def _http_listeners_only_redirect(
    resources: Sequence[StackResource], _settings: PolicySettings
) -> Iterator[tuple[str, str | None]]:
    plain = {
        (namespace_of(g.props), name_of(g)): {
            str(item.get("name")): item
            for item in dicts(get(g.props, "spec.listeners"))
            if item.get("protocol") == "HTTP"
        }
        for g in resources
        if g.type in GATEWAYS
    }
    for route in (r for r in resources if r.type in HTTP_ROUTES):
        hostnames = [str(h) for h in as_list(get(route.props, "spec.hostnames"))]
        for namespace, gateway, section, port in parent_gateways(route):
            # A parentRef's sectionName and port, each when set, must both match the listener, and the
            # route's hostnames must meet the listener's.
            served = {
                name
                for name, listener in plain.get((namespace, gateway), {}).items()
                if section in (None, name)
                and (port is None or port == listener.get("port"))
                and hostnames_intersect(listener.get("hostname"), hostnames)
            }
            if served and not all(redirects_to_https(rule) for rule in dicts(get(route.props, "spec.rules"))):
                yield (
                    f"HTTPRoute {namespace_of(route.props)}/{name_of(route)} serves plain-HTTP listener "
                    f"{', '.join(sorted(served))} of Gateway {namespace}/{gateway} with more than an https redirect.",
                    route.urn,
                )


def granted(
    grants: Sequence[StackResource], route_ns: str, backend: Mapping[str, Any], target_ns: str
) -> bool:
    kind, group, name = backend.get("kind") or "Service", backend.get("group") or "", backend.get("name")
    for grant in grants:
        if namespace_of(grant.props) != target_ns:
            continue
        froms = dicts(get(grant.props, "spec.from"))
        tos = dicts(get(grant.props, "spec.to"))
        if any(
            f.get("group") == GATEWAY_GROUP
            and f.get("kind") == "HTTPRoute"
            and f.get("namespace") == route_ns
            for f in froms
        ) and any(
            (t.get("group") or "") == group and t.get("kind") == kind and t.get("name") in (None, "", name)
            for t in tos
        ):
            return True
    return False


def _cross_namespace_backends_granted(
    resources: Sequence[StackResource], _settings: PolicySettings
) -> Iterator[tuple[str, str | None]]:
    grants = [r for r in resources if r.type in REFERENCE_GRANTS]
    for route in (r for r in resources if r.type in HTTP_ROUTES):
        own = namespace_of(route.props)
        for rule in dicts(get(route.props, "spec.rules")):
            for backend in dicts(rule.get("backendRefs")):
                target = str(backend.get("namespace") or own)
                if target != own and not granted(grants, own, backend, target):
                    yield (
                        f"HTTPRoute {own}/{name_of(route)} routes to {target}/{backend.get('name')} "
                        f"without a ReferenceGrant in {target}.",
                        route.urn,
                    )


def denies_everything(policy: StackResource) -> bool:
    """A NetworkPolicy selecting every pod of its namespace, both directions, with no rule allowing any."""
    spec = as_dict(get(policy.props, "spec"))
    selector = as_dict(spec.get("podSelector"))
    return (
        not selector.get("matchLabels")
        and not selector.get("matchExpressions")
        and {"Ingress", "Egress"} <= {str(t) for t in as_list(spec.get("policyTypes"))}
        and not as_list(spec.get("ingress"))
        and not as_list(spec.get("egress"))
    )


def _gateway_namespace_default_deny(
    resources: Sequence[StackResource], _settings: PolicySettings
) -> Iterator[tuple[str, str | None]]:
    closed = {namespace_of(p.props) for p in resources if p.type == NETWORK_POLICY and denies_everything(p)}
    for gateway in (r for r in resources if r.type in GATEWAYS):
        namespace = namespace_of(gateway.props)
        if namespace not in closed:
            yield (
                f"Gateway {namespace}/{name_of(gateway)}: namespace {namespace} has no default-deny "
                "NetworkPolicy (every pod, ingress and egress, no rules).",
                gateway.urn,
            )


POLICIES = [
    stack_policy(
        "gateway-http-listener-redirect-only",
        severity="high",
        controls=("PCI-DSS 4.2.1", "SOC2 CC6.7"),
        description="A route served on a Gateway's plain-HTTP listener sends webhooks and tokens in clear text.",
        remediation="attach only a redirect route to the HTTP listener (a rule with a RequestRedirect filter to scheme https and no backendRefs); attach the API's routes with sectionName set to the HTTPS listener.",
        check=_http_listeners_only_redirect,
    ),
    resource_policy(
        "gateway-route-no-internal-paths",
        severity="medium",
        controls=("SOC2 CC6.6",),
        types=HTTP_ROUTES,
        description="An HTTPRoute that matches /metrics (or a catch-all /) publishes internal metrics on the internet.",
        remediation="route explicit public prefixes (e.g. /webhook, /api, /health) and never / or /metrics; Prometheus scrapes /metrics in-cluster.",
        check=_no_internal_paths,
    ),
    resource_policy(
        "gateway-tls-minimum-1-2",
        severity="high",
        controls=("PCI-DSS 4.2.1", "SOC2 CC6.7"),
        types=[CLIENT_TRAFFIC_POLICY],
        description="TLS 1.0 and 1.1 are deprecated (RFC 8996) and fail PCI DSS.",
        remediation="set ClientTrafficPolicy spec.tls.minVersion to 1.2 (or 1.3) and leave maxVersion unset or 1.3.",
        check=_tls_minimum,
    ),
    resource_policy(
        "k8s-load-balancer-only-gateway",
        severity="high",
        controls=("SOC2 CC6.6",),
        types=HELM_TYPES,
        description="A chart that makes a LoadBalancer Service adds an internet entry point without the edge's TLS, limits and headers (Services declared directly: k8s-no-load-balancer-service).",
        remediation="set the chart's Service type to ClusterIP and publish through an HTTPRoute; the gateway's load balancer is declared by its EnvoyProxy resource, not by a chart.",
        check=_load_balancer_only_gateway,
    ),
    stack_policy(
        "gateway-cross-namespace-backend-granted",
        severity="high",
        controls=("SOC2 CC6.1",),
        description="A route to a backend in another namespace without that namespace's ReferenceGrant is either rejected by the controller or, on one that does not check, reaches a service its owners never published.",
        remediation="route to a Service in the route's own namespace, or declare a ReferenceGrant in the backend's namespace from this HTTPRoute namespace to that Service.",
        check=_cross_namespace_backends_granted,
    ),
    stack_policy(
        "gateway-namespace-default-deny",
        severity="high",
        controls=("SOC2 CC6.6", "PCI-DSS 1.3.1"),
        description="The gateway's namespace holds the internet-facing proxies and the controller that programs them: without a default-deny NetworkPolicy any pod may reach the controller's xDS and webhook ports, and a compromised proxy may reach anything.",
        remediation="declare a NetworkPolicy in the Gateway's namespace with podSelector {}, policyTypes [Ingress, Egress] and no rules, then allow each needed flow in its own policy (components/edge_network_policies.py).",
        check=_gateway_namespace_default_deny,
    ),
]
