"""The ThingSpace operations the lifecycle uses (the
[ThingSpace][thingspace_swap.swap.ports.ThingSpace] port), as flows it composes with ``yield from``.

They come from the client's own resources, through their public descriptors
(``Devices.get.flow``, ``Devices.iter.collect``), so the orchestrator runs on whichever client it
is given: the client's driver (sync or async) runs the whole lifecycle flow.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from .._core.commands import Flow
from .._core.endpoint import Driver
from .._core.operations import Call
from ..client import AsyncThingSpaceClient, ThingSpaceClient
from ..models import (
    Device,
    DeviceId,
    HistoryPage,
    RequestAccepted,
    RequestStatus,
    ServicePlan,
)
from ..resources import Devices, Plans, Requests
from ._listing import ListingReader
from .ports import ThingSpace

__all__ = ["ThingSpaceFlows"]


class ThingSpaceFlows(ThingSpace):
    """Flows for reading devices and plans and for submitting changes, over ``client``."""

    def __init__(self, client: ThingSpaceClient | AsyncThingSpaceClient) -> None:
        self._devices = client.devices
        self._plans = client.plans
        self._requests = client.requests
        self.driver: Driver = client.driver

    def device(self, ref: DeviceId, account_name: str) -> Flow[Device | None]:
        return Devices.get.flow(self._devices, ref, account_name=account_name)

    def devices_named(
        self, account_name: str, wanted: Collection[DeviceId]
    ) -> Flow[dict[DeviceId, Device]]:
        pager = Devices.iter.pager(
            self._devices, account_name=account_name, max_number_of_devices=500
        )
        reader = ListingReader(wanted)
        call: Call[Any] | None = reader.first(pager.first)
        while call is not None:
            page = yield from self._devices._call(call)
            call = reader.read(call, page)
        return reader.found

    def plans(self, account_name: str) -> Flow[list[ServicePlan]]:
        return Plans.list.flow(self._plans, account_name)

    def history(self, ref: DeviceId, earliest: str, latest: str) -> Flow[HistoryPage]:
        return Devices.history.flow(self._devices, ref, earliest=earliest, latest=latest)

    def request_status(self, request_id: str, account_name: str) -> Flow[RequestStatus]:
        return Requests.status.flow(self._requests, request_id, account_name=account_name)

    def change_identifier(
        self, device: DeviceId, new: tuple[DeviceId, ...], option: str, service_type: str
    ) -> Flow[RequestAccepted]:
        return Devices.change_identifier.flow(
            self._devices, device, list(new), option, service_type=service_type
        )

    def restore(self, device: DeviceId, account_name: str) -> Flow[RequestAccepted]:
        return Devices.restore.flow(self._devices, device, account_name=account_name)

    def select(self, account_name: str, filters: dict[str, object]) -> Flow[list[Device]]:
        return Devices.iter.collect(self._devices, None, account_name=account_name, **filters)

    def change_plan(self, device: DeviceId, plan: str, account_name: str) -> Flow[RequestAccepted]:
        return Devices.change_plan.flow(self._devices, device, plan, account_name=account_name)
