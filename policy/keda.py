"""KEDA's custom resources: a scaler's credentials never come from a plain Kubernetes Secret or a
container's environment (only from a secret store through pod identity), and every ScaledObject has an
upper bound it cannot scale past.

Kinds are matched by the plan's type tokens for every served version of ``keda.sh``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, cast

from policy.core import Resource, as_dict, as_list, get, number, resource_policy
from policy.workloads import object_ref

KEDA_GROUP = "keda.sh"
VERSIONS = ("v1alpha1",)
TRIGGER_AUTHENTICATIONS = tuple(
    f"kubernetes:{KEDA_GROUP}/{v}:{kind}"
    for v in VERSIONS
    for kind in ("TriggerAuthentication", "ClusterTriggerAuthentication")
)
SCALED_OBJECTS = tuple(f"kubernetes:{KEDA_GROUP}/{v}:ScaledObject" for v in VERSIONS)


def secret_key_refs(value: Any, path: str = "spec") -> Iterator[str]:
    """Where ``value`` reads a Kubernetes Secret through ``valueFrom.secretKeyRef`` (e.g. the static
    access keys of ``awsSecretManager.credentials`` or ``azureKeyVault.credentials``)."""
    if isinstance(value, Mapping):
        for key, child in cast(Mapping[str, Any], value).items():
            here = f"{path}.{key}"
            if key == "secretKeyRef" and child:
                yield here
            else:
                yield from secret_key_refs(child, here)
    else:  # a list, as the engine hands it over: a read-only sequence proxy, not a ``list``
        for index, child in enumerate(as_list(value)):
            yield from secret_key_refs(child, f"{path}.{index}")


def _no_plain_secrets(r: Resource) -> Iterator[str]:
    kind = r.type.rpartition(":")[2]  # TriggerAuthentication or ClusterTriggerAuthentication
    spec = as_dict(get(r.props, "spec"))
    for field, what in (("secretTargetRef", "a Kubernetes Secret"), ("env", "a container's environment")):
        if as_list(spec.get(field)):
            yield f"{kind} {object_ref(r)} reads credentials from {what} (spec.{field})."
    for path in secret_key_refs(spec):
        yield f"{kind} {object_ref(r)} reads credentials from a Kubernetes Secret ({path})."


def _bounded(r: Resource) -> Iterator[str]:
    spec = as_dict(get(r.props, "spec"))
    most = number(spec.get("maxReplicaCount"))
    if most is None:
        yield f"ScaledObject {object_ref(r)} has no maxReplicaCount (KEDA's default is 100)."
        return
    least = number(spec.get("minReplicaCount")) or 0
    if most < least:
        yield f"ScaledObject {object_ref(r)} has maxReplicaCount {most:g} below minReplicaCount {least:g}."


POLICIES = [
    resource_policy(
        "keda-trigger-auth-no-plain-secrets",
        severity="high",
        controls=("SOC2 CC6.1", "PCI-DSS 8.3.2"),
        types=TRIGGER_AUTHENTICATIONS,
        description="A scaler credential in a Kubernetes Secret or an environment variable is readable by "
        "anyone who can read Secrets or pod specs in the namespace, and is copied into etcd.",
        remediation="read the credential from AWS Secrets Manager (spec.awsSecretManager with podIdentity "
        "provider aws and no credentials block), so only the KEDA operator's IRSA role can read it.",
        check=_no_plain_secrets,
    ),
    resource_policy(
        "keda-scaledobject-max-replicas",
        severity="medium",
        controls=("SOC2 A1.1",),
        types=SCALED_OBJECTS,
        description="Without maxReplicaCount a ScaledObject may scale to 100 replicas on a runaway queue, "
        "past the namespace quota, the nodes and the database's connection limit.",
        remediation="set spec.maxReplicaCount (from the stack's app.worker.maxReplicas) no lower than "
        "minReplicaCount.",
        check=_bounded,
    ),
]
