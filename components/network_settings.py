"""The ``network`` section of a stack file: what the Network component (network.py) is built from."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, model_validator

from components.settings import Cidr, RuleViolation, Section


class NetworkSettings(Section):
    vpc_cidr: Cidr = "10.0.0.0/16"
    """IPv4 block of the VPC; /20 or larger. Private subnets get 1/8 of it each, public subnets 1/64."""
    az_count: int = Field(default=3, ge=2, le=6)
    """Availability zones to spread subnets, nodes, the database standby and cache replicas over."""
    nat_gateways: Literal["perAz", "single"] = "perAz"
    """`perAz` keeps each zone's egress alive when another zone fails; `single` saves cost (staging)."""
    flow_log_retention_days: Literal[7, 14, 30, 60, 90, 180, 365, 400, 545, 731, 1827, 3653] = 90
    """Days VPC flow logs are kept in CloudWatch Logs (a value CloudWatch accepts)."""

    @model_validator(mode="after")
    def _subnets_fit(self) -> NetworkSettings:
        # Each AZ gets a public and a private subnet carved out of the VPC CIDR (see network.py).
        prefix = ipaddress.ip_network(self.vpc_cidr).prefixlen
        if prefix > 20:
            raise RuleViolation(
                "network.vpcCidr", f"must be /20 or larger to hold {self.az_count * 2} subnets"
            )
        return self
