"""The ``cluster`` section of a stack file: what the Cluster component (cluster.py) is built from."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Literal

from pydantic import Field, field_validator, model_validator

from components.settings import Cidr, Name, Section


@dataclass(frozen=True)
class EksSupport:
    """One Kubernetes minor version's life on EKS: 14 months of standard support from its EKS release
    (the standard price), then 12 months of extended support (a higher price per cluster hour)."""

    standard_ends: date
    extended_ends: date


# EKS's Kubernetes release calendar, as published on 2026-12-02 in the EKS user guide ("Understand the
# Kubernetes version lifecycle on EKS", docs.aws.amazon.com/eks/latest/userguide/kubernetes-versions.html)
# and mirrored by endoflife.date/amazon-eks. Add the next version here when EKS publishes it.
# Only versions EKS still creates clusters on are listed: 1.32 and older are left out on purpose (1.32
# leaves extended support on 2027-03-23; a new stack must not start there).
EKS_SUPPORT_CALENDAR: dict[str, EksSupport] = {
    "1.33": EksSupport(date(2026, 7, 29), date(2027, 7, 29)),
    "1.34": EksSupport(date(2026, 12, 2), date(2027, 12, 2)),
    "1.35": EksSupport(date(2027, 3, 27), date(2028, 3, 27)),
    "1.36": EksSupport(date(2027, 8, 2), date(2028, 8, 2)),
}
EKS_CALENDAR_SOURCE = "https://docs.aws.amazon.com/eks/latest/userguide/kubernetes-versions.html"

# The EKS versions a stack may run, written only here (derived from the calendar above): the policy
# pack's eksAllowedVersions defaults to this list, so the program and the pack cannot disagree.
KUBERNETES_VERSIONS = tuple(EKS_SUPPORT_CALENDAR)
# New clusters start on the newest version: the longest standard support ahead of them.
DEFAULT_KUBERNETES_VERSION = KUBERNETES_VERSIONS[-1]
# The bootstrap names each stack's deploy role <prefix>-deploy-<stack>; that role creates the cluster.
CREATOR_ROLE = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/(?:.*/)?[a-z0-9-]+-deploy-[a-z0-9-]+")


class NodeGroupSettings(Section):
    name: Name
    """Name of the managed node group (unique in the cluster)."""
    instance_types: list[str] = Field(min_length=1)
    """EC2 instance types the group may launch, in order of preference."""
    capacity_type: Literal["ON_DEMAND", "SPOT"] = "ON_DEMAND"
    """`ON_DEMAND` or `SPOT`."""
    min_size: int = Field(ge=1, le=100)
    """Fewest nodes the group scales down to."""
    desired_size: int = Field(ge=1, le=100)
    """Nodes at creation (the autoscaler owns it afterwards)."""
    max_size: int = Field(ge=1, le=100)
    """Most nodes the group scales up to."""
    disk_size_gib: int = Field(default=50, ge=20, le=1000)
    """Encrypted gp3 root volume per node."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Kubernetes labels put on the group's nodes."""

    @field_validator("instance_types")
    @classmethod
    def _instance_type_shape(cls, values: list[str]) -> list[str]:
        for value in values:
            if not re.fullmatch(r"[a-z][a-z0-9-]*\.[a-z0-9]+", value):
                raise ValueError(f"{value!r} is not an EC2 instance type such as 'm6i.large'")
        return values

    @model_validator(mode="after")
    def _sizes_ordered(self) -> NodeGroupSettings:
        if not self.min_size <= self.desired_size <= self.max_size:
            raise ValueError("needs minSize <= desiredSize <= maxSize")
        return self


class ClusterSettings(Section):
    kubernetes_version: str = DEFAULT_KUBERNETES_VERSION
    """EKS Kubernetes version; one of the versions the policy pack allows (`EKS_SUPPORT_CALENDAR` in
    components/cluster_settings.py). `python -m stacks preflight` refuses one out of standard support."""
    upgrade_policy: Literal["STANDARD", "EXTENDED"] = "STANDARD"
    """What EKS does when the version leaves standard support: `STANDARD` upgrades the control plane
    automatically, `EXTENDED` keeps it and bills the extended-support rate (EKS's own default)."""
    node_groups: list[NodeGroupSettings] = Field(min_length=1)
    """Managed node groups, all in private subnets."""
    public_access_cidrs: list[Cidr] = Field(default_factory=list)
    """CIDRs allowed to reach the public API endpoint; empty makes the endpoint private only."""
    api_client_security_group_ids: list[str] = Field(default_factory=list)
    """Security groups admitted to the private API endpoint on 443: the CI runners' (the bootstrap's
    `<stack>RunnerSecurityGroupId` output). Nodes and pods reach it through the cluster's own group."""
    admin_role_arns: list[str] = Field(default_factory=list)
    """IAM roles granted cluster-admin through EKS access entries. Never the identity that creates the
    cluster (CI's deploy role): EKS already gives it an admin entry, and listing it again fails with 409."""

    @field_validator("kubernetes_version")
    @classmethod
    def _supported_version(cls, value: str) -> str:
        if value not in KUBERNETES_VERSIONS:
            raise ValueError(f"must be one of {', '.join(KUBERNETES_VERSIONS)} (got {value!r})")
        return value

    @field_validator("public_access_cidrs")
    @classmethod
    def _not_the_internet(cls, values: list[str]) -> list[str]:
        if "0.0.0.0/0" in values:
            raise ValueError("0.0.0.0/0 opens the Kubernetes API to the internet; list your admin CIDRs")
        return values

    @field_validator("api_client_security_group_ids")
    @classmethod
    def _security_group_ids(cls, values: list[str]) -> list[str]:
        for value in values:
            if not re.fullmatch(r"sg-[0-9a-f]{8,17}", value):
                raise ValueError(f"{value!r} is not a security group id")
        return values

    @field_validator("admin_role_arns")
    @classmethod
    def _role_arns(cls, values: list[str]) -> list[str]:
        for value in values:
            if not re.fullmatch(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+", value):
                raise ValueError(f"{value!r} is not an IAM role ARN")
            if CREATOR_ROLE.fullmatch(value):
                raise ValueError(
                    f"{value!r} is a deploy role, which creates the cluster and gets its admin entry from "
                    "EKS already (a second entry fails with 409); list only other admins"
                )
        return values

    @model_validator(mode="after")
    def _unique_node_groups(self) -> ClusterSettings:
        names = [group.name for group in self.node_groups]
        if len(names) != len(set(names)):
            raise ValueError("node group names must be unique")
        return self
