"""The Gateway API matching rules the edge policies rest on, checked against the specification's
examples (the edge policies' further branches are in tests/policy/gateway_branch_cases.py, run by
test_policy_branches.py)."""

from __future__ import annotations

from typing import Any

import pytest

from policy.core import StackResource
from policy.gateway import covers, granted, hostnames_intersect, parent_gateways


def path_match(kind: str | None, value: str | None) -> dict[str, Any]:
    path = {k: v for k, v in (("type", kind), ("value", value)) if v is not None}
    return {"path": path}


# The specification's PathPrefix example: /abc matches /abc, /abc/ and /abc/def, not /abcd; a trailing
# slash in the prefix is ignored. Exact is the whole path. No path (or no value) is PathPrefix /.
@pytest.mark.parametrize(
    ("kind", "value", "path", "admitted"),
    [
        ("PathPrefix", "/abc", "/abc", True),
        ("PathPrefix", "/abc", "/abc/", True),
        ("PathPrefix", "/abc", "/abc/def", True),
        ("PathPrefix", "/abc", "/abcd", False),
        ("PathPrefix", "/abc/", "/abc", True),
        ("PathPrefix", "/abc/", "/abc/def", True),
        ("PathPrefix", "/abc/", "/abcd", False),
        ("PathPrefix", "/abc", "/ab", False),
        ("PathPrefix", "/v1/X", "/v1", False),  # a longer prefix admits neither its parent
        ("PathPrefix", "/v1/X", "/v1/Y", False),  # nor its siblings
        ("PathPrefix", "/", "/anything/at/all", True),
        ("PathPrefix", None, "/anything", True),
        (None, "/abc", "/abc/def", True),
        (None, "/abc", "/abcd", False),
        (None, None, "/anything", True),
        ("Exact", "/abc", "/abc", True),
        ("Exact", "/abc", "/abc/", False),
        ("Exact", "/abc", "/abc/def", False),
        ("Exact", "/", "/abc", False),
        ("RegularExpression", "/ab+c", "/abbc", True),
        ("RegularExpression", "/ab", "/abc", False),  # the whole path must match
        ("RegularExpression", "/a(", "/abc", True),  # unreadable: not proven safe
    ],
)
def test_covers_follows_the_path_match_rules(
    kind: str | None, value: str | None, path: str, admitted: bool
) -> None:
    assert covers(path_match(kind, value), path) is admitted


def test_a_match_without_a_path_admits_every_path() -> None:
    assert covers({}, "/metrics") is True
    assert covers({"headers": [{"name": "x", "value": "y"}]}, "/metrics") is True


# The specification's hostname rules: a listener or route without hostnames matches every hostname;
# *.example.com matches test.example.com and foo.test.example.com, not example.com; a route is accepted
# on a listener when one of its hostnames meets the listener's (either side's wildcard may cover the other).
@pytest.mark.parametrize(
    ("listener", "route", "accepted"),
    [
        (None, ["api.example.com"], True),
        ("", ["api.example.com"], True),
        ("api.example.com", [], True),
        ("api.example.com", ["api.example.com"], True),
        ("api.example.com", ["www.example.com"], False),
        ("api.example.com", ["www.example.com", "api.example.com"], True),
        ("*.example.com", ["test.example.com"], True),
        ("*.example.com", ["foo.test.example.com"], True),
        ("*.example.com", ["example.com"], False),
        ("*.example.com", ["notexample.com"], False),
        ("*.example.com", ["*.example.com"], True),
        ("*.example.com", ["*.test.example.com"], True),
        ("*.example.com", ["*.example.org"], False),
        ("test.example.com", ["*.example.com"], True),
        ("foo.test.example.com", ["*.example.com"], True),
        ("*.test.example.com", ["*.example.com"], True),
        ("example.com", ["*.example.com"], False),
        ("notexample.com", ["*.example.com"], False),
    ],
)
def test_hostnames_intersect_as_listener_and_route_hostnames_do(
    listener: str | None, route: list[str], accepted: bool
) -> None:
    assert hostnames_intersect(listener, route) is accepted


def resource(kind: str, props: dict[str, Any]) -> StackResource:
    name = str(props.get("metadata", {}).get("name", "r"))
    type_ = f"kubernetes:gateway.networking.k8s.io/v1beta1:{kind}"
    return StackResource(type_, name, f"urn:{type_}::{name}", props, None, ())


def route(parent_refs: list[dict[str, Any]], namespace: str | None = "apps") -> StackResource:
    metadata = {"name": "web"} | ({"namespace": namespace} if namespace else {})
    return resource("HTTPRoute", {"metadata": metadata, "spec": {"parentRefs": parent_refs}})


def test_parent_gateways_apply_the_parent_ref_defaults() -> None:
    """Group gateway.networking.k8s.io, kind Gateway and the route's namespace when unset (the namespace
    also when empty); a group set to "" is the core group, so no Gateway API Gateway."""
    refs = [
        {"name": "a"},
        {"name": "b", "namespace": "edge", "sectionName": "https", "port": 443.0},
        {"name": "c", "namespace": ""},
        {"name": "d", "group": "gateway.networking.k8s.io", "kind": "Gateway", "port": 80},
        {"name": "mesh", "group": "", "kind": "Service"},
        {"name": "core", "group": "", "kind": "Gateway"},
        {"name": "other", "group": "example.com", "kind": "Gateway"},
        {"name": "set", "kind": "ListenerSet"},
    ]
    assert parent_gateways(route(refs)) == [
        ("apps", "a", None, None),
        ("edge", "b", "https", 443.0),
        ("apps", "c", None, None),
        ("apps", "d", None, 80),
    ]
    assert parent_gateways(route([{"name": "a"}], namespace=None)) == [("default", "a", None, None)]


def reference_grant(namespace: str, from_: list[dict[str, Any]], to: list[dict[str, Any]]) -> StackResource:
    props = {"metadata": {"name": "g", "namespace": namespace}, "spec": {"from": from_, "to": to}}
    return resource("ReferenceGrant", props)


FROM_APPS = {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "apps"}
SERVICE = {"group": "", "kind": "Service"}


@pytest.mark.parametrize(
    ("grant_namespace", "from_", "to", "backend", "admitted"),
    [
        # A backendRef's group defaults to the core group "" and its kind to Service.
        ("shared", FROM_APPS, SERVICE, {"name": "api"}, True),
        ("shared", FROM_APPS, {"kind": "Service"}, {"name": "api", "group": "", "kind": "Service"}, True),
        ("shared", FROM_APPS, SERVICE | {"name": "api"}, {"name": "api"}, True),
        ("shared", FROM_APPS, SERVICE | {"name": "web"}, {"name": "api"}, False),
        ("shared", FROM_APPS, {"group": "", "kind": "Secret"}, {"name": "api"}, False),
        ("shared", FROM_APPS, {"group": "example.com", "kind": "Service"}, {"name": "api"}, False),
        (
            "shared",
            FROM_APPS,
            {"group": "example.com", "kind": "Backend"},
            {"name": "api", "group": "example.com", "kind": "Backend"},
            True,
        ),
        ("shared", FROM_APPS, SERVICE, {"name": "api", "group": "example.com", "kind": "Backend"}, False),
        # The grant must live in the backend's namespace and name the route's kind, group and namespace.
        ("apps", FROM_APPS, SERVICE, {"name": "api"}, False),
        ("shared", FROM_APPS | {"namespace": "other"}, SERVICE, {"name": "api"}, False),
        ("shared", FROM_APPS | {"kind": "GRPCRoute"}, SERVICE, {"name": "api"}, False),
        ("shared", FROM_APPS | {"group": "example.com"}, SERVICE, {"name": "api"}, False),
    ],
)
def test_granted_follows_reference_grant_rules(
    grant_namespace: str, from_: dict[str, Any], to: dict[str, Any], backend: dict[str, Any], admitted: bool
) -> None:
    grants = [reference_grant(grant_namespace, [from_], [to])]
    assert granted(grants, "apps", backend, "shared") is admitted


def test_any_grant_of_the_target_namespace_may_admit_the_backend() -> None:
    wrong_namespace = reference_grant("other", [FROM_APPS], [SERVICE])
    wrong_kind = reference_grant("shared", [FROM_APPS], [{"group": "", "kind": "Secret"}])
    right = reference_grant(
        "shared",
        [{"group": "example.com", "kind": "X", "namespace": "y"}, FROM_APPS],
        [{"group": "", "kind": "Secret"}, SERVICE],
    )
    assert granted([wrong_namespace, wrong_kind, right], "apps", {"name": "api"}, "shared") is True
    assert granted([wrong_namespace, wrong_kind], "apps", {"name": "api"}, "shared") is False
    assert granted([], "apps", {"name": "api"}, "shared") is False
