"""Accounts, service plans and asynchronous request status."""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["Account", "RequestStatus", "ServicePlan"]


@attrs.frozen
class ServicePlan:
    """A service (rate) plan available to an account."""

    name: str
    code: str | None = None
    size_kb: int | None = None
    carrier_service_plan_code: str | None = None


@attrs.frozen
class Account:
    """An account. Carriers, features and IP pools are kept as ThingSpace sends them."""

    account_name: str | None = None
    account_number: str | None = None
    organization_name: str | None = None
    is_provisioning_allowed: bool | None = None
    carriers: list[Any] = attrs.Factory(list)
    features: list[Any] = attrs.Factory(list)
    ip_pools: list[Any] = attrs.field(factory=list, metadata={"wire": "iPPools"})
    service_plans: list[ServicePlan] = attrs.Factory(list)


@attrs.frozen
class RequestStatus:
    """``Pending``, ``Success`` or ``Failure`` of an asynchronous request."""

    request_id: str
    status: str

    @property
    def done(self) -> bool:
        return self.status.lower() != "pending"
