"""Pulumi unit-test mocks that answer like the real providers.

Every resource gets an id and the outputs its provider would return (ARNs, endpoints, generated names),
so the wiring between components is exercised with values of the right shape: a security group id
looks like ``sg-…``, an RDS instance has an endpoint and an RDS-managed master secret, pulumi-eks's
remote ``Cluster`` component returns a kubeconfig and OIDC issuer. Outputs are derived from the
resource's name (a stable hash), so two plans of the same program are byte-identical and diffable.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import pulumi
from google.protobuf import json_format
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs

ACCOUNT_ID = "123456789012"
SECRET_SIG = rpc._special_sig_key  # pyright: ignore[reportPrivateUsage]
SECRET_VALUE = rpc._special_secret_sig  # pyright: ignore[reportPrivateUsage]

Props = dict[str, Any]


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and cast(Props, value).get(SECRET_SIG) == SECRET_VALUE


def unwrap_secrets(value: Any) -> Any:
    """The plain value of an input (secrets reach the monitor wrapped in a signature dict)."""
    if is_secret(value):
        return unwrap_secrets(value["value"])
    if isinstance(value, dict):
        return {k: unwrap_secrets(v) for k, v in value.items()}  # pyright: ignore[reportUnknownVariableType]
    if isinstance(value, list):
        return [unwrap_secrets(v) for v in value]  # pyright: ignore[reportUnknownVariableType]
    return value


def _hex(seed: str, length: int) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:length]


@dataclass
class _Ctx:
    name: str
    inputs: Props
    region: str

    def arn(self, service: str, resource: str, *, region: bool = True, account: bool = True) -> str:
        where = self.region if region else ""
        who = ACCOUNT_ID if account else ""
        return f"arn:aws:{service}:{where}:{who}:{resource}"

    def prefixed_id(self, prefix: str) -> str:
        return f"{prefix}-{_hex(self.name, 17)}"

    def physical_name(self, key: str = "name") -> str:
        # Pulumi auto-names resources as "<logical name>-<7 random chars>" unless a name is given.
        given = self.inputs.get(key)
        return str(given) if given else f"{self.name}-{_hex(self.name, 7)}"


Shaper = Callable[[_Ctx], tuple[str, Props]]


def _vpc(c: _Ctx) -> tuple[str, Props]:
    vpc_id = c.prefixed_id("vpc")
    return vpc_id, {"arn": c.arn("ec2", f"vpc/{vpc_id}"), "defaultSecurityGroupId": c.prefixed_id("sg")}


def _ec2(prefix: str, kind: str) -> Shaper:
    def shape(c: _Ctx) -> tuple[str, Props]:
        rid = c.prefixed_id(prefix)
        return rid, {"arn": c.arn("ec2", f"{kind}/{rid}")}

    return shape


def _eip(c: _Ctx) -> tuple[str, Props]:
    rid = c.prefixed_id("eipalloc")
    octets = bytes.fromhex(_hex(c.name, 6))
    return rid, {"allocationId": rid, "publicIp": f"52.{octets[0]}.{octets[1]}.{octets[2]}"}


def _named_arn(service: str, kind: str, *, region: bool = True) -> Shaper:
    def shape(c: _Ctx) -> tuple[str, Props]:
        name = c.physical_name()
        return name, {"name": name, "arn": c.arn(service, f"{kind}{name}", region=region)}

    return shape


def _iam_role(c: _Ctx) -> tuple[str, Props]:
    name = c.physical_name()
    return name, {
        "name": name,
        "arn": c.arn("iam", f"role/{name}", region=False),
        "uniqueId": "AROA" + _hex(name, 17).upper(),
    }


def _iam_policy(c: _Ctx) -> tuple[str, Props]:
    name = c.physical_name()
    arn = c.arn("iam", f"policy/{name}", region=False)
    return arn, {"name": name, "arn": arn}


def _kms_key(c: _Ctx) -> tuple[str, Props]:
    h = _hex(c.name, 32)
    key_id = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"
    return key_id, {"keyId": key_id, "arn": c.arn("kms", f"key/{key_id}")}


def _secret(c: _Ctx) -> tuple[str, Props]:
    # With a name prefix, the provider appends a unique 26-character suffix (as Terraform's PrefixedUniqueId).
    prefix = c.inputs.get("namePrefix")
    name = f"{prefix}{_hex(c.name, 26)}" if prefix else c.physical_name()
    # Secrets Manager appends six random characters to every secret ARN.
    arn = c.arn("secretsmanager", f"secret:{name}-{_hex(name, 6)}")
    return arn, {"name": name, "arn": arn}


def _secret_version(c: _Ctx) -> tuple[str, Props]:
    return f"{c.inputs.get('secretId', '')}|{_hex(c.name, 32)}", {"versionId": _hex(c.name, 32)}


def _rds_instance(c: _Ctx) -> tuple[str, Props]:
    identifier = c.physical_name("identifier")
    address = f"{identifier}.c{_hex(identifier, 11)}.{c.region}.rds.amazonaws.com"
    port = int(c.inputs.get("port") or 5432)
    master_secret = c.arn("secretsmanager", f"secret:rds!db-{_hex(identifier, 36)}-{_hex(identifier, 6)}")
    return identifier, {
        "identifier": identifier,
        "arn": c.arn("rds", f"db:{identifier}"),
        "address": address,
        "endpoint": f"{address}:{port}",
        "port": port,
        "resourceId": "db-" + _hex(identifier, 26).upper(),
        "masterUserSecrets": [
            {
                "secretArn": master_secret,
                "kmsKeyId": c.inputs.get("masterUserSecretKmsKeyId", ""),
                "secretStatus": "active",
            }
        ],
    }


def _replication_group(c: _Ctx) -> tuple[str, Props]:
    group_id = str(c.inputs.get("replicationGroupId") or c.physical_name())
    host = f"{group_id}.{_hex(group_id, 6)}.ng.0001.euw1.cache.amazonaws.com"
    return group_id, {
        "arn": c.arn("elasticache", f"replicationgroup:{group_id}"),
        "primaryEndpointAddress": f"master.{host}",
        "readerEndpointAddress": f"replica.{host}",
        "port": int(c.inputs.get("port") or 6379),
        "memberClusters": [
            f"{group_id}-00{i + 1}" for i in range(int(c.inputs.get("numCacheClusters") or 2))
        ],
    }


def _ecr_repository(c: _Ctx) -> tuple[str, Props]:
    name = c.physical_name()
    return name, {
        "name": name,
        "arn": c.arn("ecr", f"repository/{name}"),
        "registryId": ACCOUNT_ID,
        "repositoryUrl": f"{ACCOUNT_ID}.dkr.ecr.{c.region}.amazonaws.com/{name}",
    }


def _log_group(c: _Ctx) -> tuple[str, Props]:
    name = c.physical_name()
    return name, {"name": name, "arn": c.arn("logs", f"log-group:{name}")}


def _sns_topic(c: _Ctx) -> tuple[str, Props]:
    name = c.physical_name()
    arn = c.arn("sns", name)
    return arn, {"name": name, "arn": arn}


def _eks_cluster(c: _Ctx) -> tuple[str, Props]:
    """pulumi-eks's remote component: only plain outputs, no resource references (they cannot be mocked)."""
    name = c.physical_name()
    issuer_id = _hex(name, 32).upper()
    issuer = f"oidc.eks.{c.region}.amazonaws.com/id/{issuer_id}"
    endpoint = f"https://{issuer_id}.gr7.{c.region}.eks.amazonaws.com"
    ca_data = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUMvakNDQWVhZ0F3SUJBZ0lCQURBTkJna3Foa2lHOXcwQkFRc0ZBREFWTVJNd0VRWURWUVFERXdwcmRXSmwKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo="
    kubeconfig: Props = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "kubernetes", "cluster": {"server": endpoint, "certificate-authority-data": ca_data}}
        ],
        "contexts": [{"name": "aws", "context": {"cluster": "kubernetes", "user": "aws"}}],
        "current-context": "aws",
        "users": [
            {
                "name": "aws",
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1beta1",
                        "command": "aws",
                        "args": ["eks", "get-token", "--cluster-name", name, "--output", "json"],
                    }
                },
            }
        ],
    }
    return name, {
        "kubeconfig": kubeconfig,
        "kubeconfigJson": json.dumps(kubeconfig),
        "clusterSecurityGroupId": c.prefixed_id("sg"),
        "nodeSecurityGroupId": c.prefixed_id("sg"),
        "oidcIssuer": issuer,
        "oidcProviderUrl": f"https://{issuer}",
        "oidcProviderArn": c.arn("iam", f"oidc-provider/{issuer}", region=False),
    }


def _launch_template(c: _Ctx) -> tuple[str, Props]:
    rid, outputs = _ec2("lt", "launch-template")(c)
    # A new template starts at version 1; node groups pin the version they launch from.
    return rid, {**outputs, "latestVersion": 1, "defaultVersion": 1}


def _managed_node_group(c: _Ctx) -> tuple[str, Props]:
    prefix = c.inputs.get("nodeGroupNamePrefix")
    return (f"{prefix}{_hex(c.name, 26)}" if prefix else c.physical_name("nodeGroupName")), {}


def mock_addon_version(addon: str, kubernetes_version: str) -> str:
    """What the mocks answer as EKS's default version of ``addon`` for a Kubernetes version: a made-up
    value that changes with the Kubernetes version, as the real defaults do."""
    return f"v0.0.0-{addon}-k8s{kubernetes_version}-eksbuild.1"


def _helm_release(c: _Ctx) -> tuple[str, Props]:
    name = c.physical_name()
    namespace = c.inputs.get("namespace", "default")
    return f"{namespace}/{name}", {
        "name": name,
        "status": {"name": name, "namespace": namespace, "status": "deployed"},
    }


def _kubernetes_object(c: _Ctx) -> tuple[str, Props]:
    metadata = dict(c.inputs.get("metadata") or {})
    metadata.setdefault("name", c.physical_name())
    namespace = metadata.get("namespace")
    rid = f"{namespace}/{metadata['name']}" if namespace else str(metadata["name"])
    return rid, {"metadata": metadata}


def _random_password(c: _Ctx) -> tuple[str, Props]:
    length = int(c.inputs.get("length") or 32)
    # A fixed, obviously fake value: real runs generate it; the plan redacts it as a secret anyway.
    return "none", {"result": ("mock" + _hex(c.name, 64))[:length], "bcryptHash": "$2a$10$mock"}


def _random_id(c: _Ctx) -> tuple[str, Props]:
    raw = _hex(c.name, 2 * int(c.inputs.get("byteLength") or 8))
    return raw, {"hex": raw, "dec": str(int(raw, 16))}


def pushed_digest(tagged_ref: str) -> str:
    """The digest the mock registry holds under ``<repository url>:<tag>``: what a build pushed there, and
    what a later look-up of that tag finds."""
    return "sha256:" + hashlib.sha256(tagged_ref.encode()).hexdigest()


def _docker_image(c: _Ctx) -> tuple[str, Props]:
    tags = [str(t) for t in cast(list[Any], c.inputs.get("tags") or [])]
    digest = pushed_digest(tags[0]) if tags else pushed_digest(c.name)
    ref = f"{tags[0].rsplit(':', 1)[0]}@{digest}" if tags else f"{c.name}@{digest}"
    return digest, {"digest": digest, "ref": ref}


SHAPERS: dict[str, Shaper] = {
    "aws:ec2/vpc:Vpc": _vpc,
    "aws:ec2/subnet:Subnet": _ec2("subnet", "subnet"),
    "aws:ec2/internetGateway:InternetGateway": _ec2("igw", "internet-gateway"),
    "aws:ec2/natGateway:NatGateway": _ec2("nat", "natgateway"),
    "aws:ec2/eip:Eip": _eip,
    "aws:ec2/routeTable:RouteTable": _ec2("rtb", "route-table"),
    "aws:ec2/routeTableAssociation:RouteTableAssociation": _ec2("rtbassoc", "route-table-association"),
    "aws:ec2/route:Route": _ec2("r", "route"),
    "aws:ec2/securityGroup:SecurityGroup": _ec2("sg", "security-group"),
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": _ec2("sgr", "security-group-rule"),
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": _ec2("sgr", "security-group-rule"),
    "aws:ec2/flowLog:FlowLog": _ec2("fl", "vpc-flow-log"),
    "aws:ec2/vpcEndpoint:VpcEndpoint": _ec2("vpce", "vpc-endpoint"),
    "aws:ec2/launchTemplate:LaunchTemplate": _launch_template,
    "aws:cloudwatch/logGroup:LogGroup": _log_group,
    "aws:cloudwatch/metricAlarm:MetricAlarm": _named_arn("cloudwatch", "alarm:"),
    "aws:iam/role:Role": _iam_role,
    "aws:iam/policy:Policy": _iam_policy,
    "aws:iam/instanceProfile:InstanceProfile": _named_arn("iam", "instance-profile/", region=False),
    "aws:kms/key:Key": _kms_key,
    "aws:kms/alias:Alias": _named_arn("kms", "alias/"),
    "aws:secretsmanager/secret:Secret": _secret,
    "aws:secretsmanager/secretVersion:SecretVersion": _secret_version,
    "aws:rds/instance:Instance": _rds_instance,
    "aws:rds/subnetGroup:SubnetGroup": _named_arn("rds", "subgrp:"),
    "aws:rds/parameterGroup:ParameterGroup": _named_arn("rds", "pg:"),
    "aws:elasticache/replicationGroup:ReplicationGroup": _replication_group,
    "aws:elasticache/subnetGroup:SubnetGroup": _named_arn("elasticache", "subnetgroup:"),
    "aws:elasticache/parameterGroup:ParameterGroup": _named_arn("elasticache", "parametergroup:"),
    "aws:ecr/repository:Repository": _ecr_repository,
    "aws:sns/topic:Topic": _sns_topic,
    "eks:index:Cluster": _eks_cluster,
    "eks:index:ManagedNodeGroup": _managed_node_group,
    "kubernetes:helm.sh/v3:Release": _helm_release,
    "random:index/randomPassword:RandomPassword": _random_password,
    "random:index/randomId:RandomId": _random_id,
    "docker-build:index:Image": _docker_image,
}


# Data sources (invokes) the program calls, answered as AWS would for the mock account.
def _invoke_answers(region: str) -> dict[str, Callable[[Props], Props]]:
    azs = [f"{region}{suffix}" for suffix in "abcdef"]
    return {
        "aws:index/getRegion:getRegion": lambda _: {"name": region, "region": region, "id": region},
        "aws:index/getCallerIdentity:getCallerIdentity": lambda _: {
            "accountId": ACCOUNT_ID,
            "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/mock",
            "userId": "AIDAMOCK",
            "id": ACCOUNT_ID,
        },
        "aws:index/getPartition:getPartition": lambda _: {
            "partition": "aws",
            "dnsSuffix": "amazonaws.com",
            "id": "aws",
        },
        "aws:index/getAvailabilityZones:getAvailabilityZones": lambda _: {
            "names": azs,
            "zoneIds": [f"euw1-az{i + 1}" for i in range(len(azs))],
            "state": "available",
            "id": region,
        },
        "aws:eks/getAddonVersion:getAddonVersion": lambda args: {
            "addonName": args["addonName"],
            "kubernetesVersion": args["kubernetesVersion"],
            "version": mock_addon_version(args["addonName"], args["kubernetesVersion"]),
            "id": args["addonName"],
        },
        "aws:ecr/getImage:getImage": lambda args: {
            "imageDigest": pushed_digest(
                f"{ACCOUNT_ID}.dkr.ecr.{region}.amazonaws.com/{args['repositoryName']}:{args['imageTag']}"
            ),
            "imageTags": [args["imageTag"]],
            "registryId": ACCOUNT_ID,
            "repositoryName": args["repositoryName"],
            "id": args["imageTag"],
        },
        "aws:ecr/getAuthorizationToken:getAuthorizationToken": lambda _: {
            "authorizationToken": "QVdTOm1vY2s=",
            "userName": "AWS",
            "password": "mock-ecr-password",
            "proxyEndpoint": f"https://{ACCOUNT_ID}.dkr.ecr.{region}.amazonaws.com",
            "expiresAt": "2030-01-01T00:00:00Z",
            "id": region,
        },
    }


@dataclass
class Registration:
    """One resource as the engine would see it at registration time."""

    urn: str
    type: str
    name: str
    parent: str
    provider: str
    depends_on: list[str]
    protect: bool
    custom: bool
    inputs: Props
    # What the mocks answered (id aside): lets tests check that one resource got another's output.
    outputs: Props
    # Resource options the engine acts on when replacing, deleting or waiting.
    retain_on_delete: bool = False
    delete_before_replace: bool = False
    # "create"/"update"/"delete" → a Go duration ("30m"), only the ones the program set.
    custom_timeouts: dict[str, str] = field(default_factory=dict[str, str])


class PlanMocks(pulumi.runtime.Mocks):
    def __init__(self, region: str) -> None:
        self.region = region
        self.invokes = _invoke_answers(region)

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[Any, Any]]:
        inputs: Props = unwrap_secrets(args.inputs)  # pyright: ignore[reportUnknownMemberType] - untyped in the SDK
        shaper = SHAPERS.get(args.typ)
        if shaper is None and args.typ.startswith("kubernetes:"):
            shaper = _kubernetes_object
        if shaper is None:
            return f"{args.name}-id", inputs
        rid, outputs = shaper(_Ctx(args.name, inputs, self.region))
        return rid, {**inputs, **outputs}

    def call(self, args: MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        answer = self.invokes.get(args.token)
        if answer is None:
            raise NotImplementedError(f"the offline plan has no mock answer for data source {args.token}")
        arguments = cast(Props, args.args)  # pyright: ignore[reportUnknownMemberType] - untyped in the SDK
        return answer(arguments), []


RESOURCE_REF = rpc._special_resource_sig  # pyright: ignore[reportPrivateUsage]


def _references_as_urns(value: Any) -> Any:
    """A resource reference input, as CrossGuard shows it: the referenced resource's URN."""
    if isinstance(value, dict):
        plain = cast(Props, value)
        if plain.get(SECRET_SIG) == RESOURCE_REF:
            return plain.get("urn")
        return {k: _references_as_urns(v) for k, v in plain.items()}
    if isinstance(value, list):
        return [_references_as_urns(v) for v in cast(list[Any], value)]
    return value


def protocol_inputs(struct: Any) -> Props:
    """Inputs as the engine receives them: plain JSON values, secrets still marked, references as URNs.

    ``rpc.deserialize_properties`` would rebuild live Python objects (resources, assets); the plan wants
    the wire values.
    """
    return cast(Props, _references_as_urns(json_format.MessageToDict(struct)))


def _timeouts(request: Any) -> dict[str, str]:
    timeouts = request.customTimeouts
    return {kind: value for kind in ("create", "update", "delete") if (value := getattr(timeouts, kind))}


class CapturingMonitor(MockMonitor):
    """The mock monitor, recording what the engine would receive: parent, dependencies, protect."""

    def __init__(self, mocks: PlanMocks) -> None:
        super().__init__(mocks)
        self.registrations: list[Registration] = []

    def _outputs(self, urn: str) -> Props:
        registered = self.resources[urn]
        state = cast(Props, registered.state or {})  # pyright: ignore[reportUnknownMemberType]
        return {"id": registered.id, **unwrap_secrets(state)}

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        # A resource reference input (eks.ManagedNodeGroup's ``cluster``) would be rehydrated by the base
        # monitor on its worker thread, starting a getResource task on that thread's event loop, which
        # the program's loop later trips over ("attached to a different loop"). The mocks only need the
        # referenced URN, which is also what the plan records.
        wire = json_format.MessageToDict(request.object)
        plain = _references_as_urns(wire)
        if plain != wire:
            request.object.Clear()
            request.object.update(plain)
        response = super().RegisterResource(request)  # pyright: ignore[reportUnknownMemberType]
        if request.type != "pulumi:pulumi:Stack":
            self.registrations.append(
                Registration(
                    urn=response.urn,
                    type=request.type,
                    name=request.name,
                    parent=request.parent,
                    provider=request.provider,
                    depends_on=sorted(set(request.dependencies)),
                    protect=bool(request.protect),
                    custom=bool(request.custom),
                    inputs=protocol_inputs(request.object),
                    outputs=self._outputs(response.urn),
                    retain_on_delete=bool(request.retainOnDelete),
                    delete_before_replace=bool(request.deleteBeforeReplace),
                    custom_timeouts=_timeouts(request),
                )
            )
        return response
