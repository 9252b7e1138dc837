"""The stack file's ``cost`` section: the usage assumptions of the cost estimate.

Only usage-based prices need an assumption (traffic through the NAT gateways, log volume, image
storage); everything else is priced from the plan itself. Read by ``python -m stacks plan`` (plan.md's
cost section) and by the policy pack's ``stack-monthly-budget`` policy (whose budget,
``monthlyBudgetUsd``, is a per-stack knob of policy/PulumiPolicy.yaml).
"""

from __future__ import annotations

from pydantic import Field

from components.settings import Section


class CostSettings(Section):
    nat_processed_gb_per_month: float = Field(default=100, ge=0)
    """GB per month through the NAT gateways (all of them together), billed per GB processed."""
    log_ingest_gb_per_month: float = Field(default=10, ge=0)
    """GB per month written to CloudWatch Logs (control plane, flow logs, RDS and cache logs)."""
    log_stored_gb: float = Field(default=50, ge=0)
    """GB kept in CloudWatch Logs at any time (after the log groups' retention)."""
    ecr_stored_gb_per_repository: float = Field(default=5, ge=0)
    """GB of images kept per ECR repository (after the lifecycle policy)."""
    nlb_lcu: float = Field(default=1, ge=0)
    """Average NLB capacity units (NLCU) in use per hour by the ingress load balancer."""
    interface_endpoint_processed_gb_per_month: float = Field(default=10, ge=0)
    """GB per month through interface VPC endpoints (all together)."""
