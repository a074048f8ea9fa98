"""The operations, grouped as the client's attributes (``client.devices.change_identifier``).

Each method is written once and serves both clients (see ``_core.endpoint``). Identifier
arguments accept a [DeviceId][thingspace_swap.models.DeviceId], an identifier value type such as
[Iccid][thingspace_swap.identifiers.Iccid], or a ``(value, kind)`` pair.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence

import attrs

from ._core import operations as ops
from ._core.commands import Flow
from ._core.endpoint import Mode, Pager, Resource, cursor_guard, endpoint, paginated
from ._core.operations import Call
from .errors import InvalidRequestError
from .models import (
    Account,
    CallbackRegistration,
    CallbackService,
    ChangeIdentifierRequest,
    ChangeOption,
    Device,
    DeviceActionRequest,
    DeviceDeleteRequest,
    DeviceDeleteResult,
    DeviceFilter,
    DeviceId,
    DeviceListPage,
    DeviceListRequest,
    DeviceSelection,
    HistoryPage,
    HistoryRequest,
    KeyValue,
    RegisteredCallback,
    RequestAccepted,
    RequestStatus,
    ServicePlan,
)
from .tokens import LoginBlock

__all__ = ["Accounts", "Callbacks", "DeviceRef", "Devices", "Plans", "Requests", "Session"]

DeviceRef = DeviceId | str | tuple[str, str]
"""A device identifier: ``DeviceId``, a typed identifier (``Iccid(...)``) or ``(value, kind)``."""


def device_id(ref: DeviceRef) -> DeviceId:
    """Normalise a ``DeviceRef`` to a [DeviceId][thingspace_swap.models.DeviceId]."""
    if isinstance(ref, DeviceId):
        return ref
    if isinstance(ref, tuple):
        return DeviceId(*ref)
    kind = getattr(ref, "kind", None)
    if kind is None:
        raise InvalidRequestError(
            f"{ref!r} has no kind: pass Iccid(...)/Imei(...), a DeviceId or (value, kind)"
        )
    return DeviceId(str(ref), kind)


def _ids(refs: DeviceRef | Sequence[DeviceRef]) -> list[DeviceId]:
    if isinstance(refs, (DeviceId, str, tuple)):
        return [device_id(refs)]
    return [device_id(r) for r in refs]


def _selection(devices: DeviceRef | Sequence[DeviceRef]) -> list[DeviceSelection]:
    """One selector per device, each naming its device by one identifier."""
    if isinstance(devices, (DeviceId, str, tuple)):
        devices = [devices]
    return [DeviceSelection([device_id(d)]) for d in devices]


class Devices(Resource[Mode]):
    """Devices: list, read, swap identifiers, and change state or plan."""

    @endpoint
    def change_identifier(
        self,
        device: DeviceRef | Sequence[DeviceRef],
        new: DeviceRef | Sequence[DeviceRef] | None,
        option: ChangeOption | str,
        *,
        service_plan: str | None = None,
        zip_code: str | None = None,
        npa_nxx: str | None = None,
        assign_non_geo_mdn: bool | None = None,
        smsr_oid: str | None = None,
        service_type: str = "4G",
    ) -> Flow[RequestAccepted]:
        """Swap a device's ICCID, IMEI (or both, or its MSISDN): ``PUT
        /devices/{serviceType}/actions/deviceId``.

        The result arrives as a CarrierService callback. Never resent after an unknown outcome:
        a timeout or 5xx raises with ``outcome_unknown=True``; read the device to settle it.
        """
        body = ChangeIdentifierRequest(
            device_ids=_ids(device),
            device_ids_to=None if new is None else _ids(new),
            change4g_option=option,
            service_plan=service_plan,
            zip_code=zip_code,
            npa_nxx=npa_nxx,
            assign_non_geo_mdn=assign_non_geo_mdn,
            smsr_oid=smsr_oid,
        )
        call = Call(ops.CHANGE_IDENTIFIER, {"service_type": service_type}, body)
        return self._call(call)

    @endpoint
    def list(
        self, /, request: DeviceListRequest | None = None, **filters: object
    ) -> Flow[DeviceListPage]:
        """One page of devices (``POST /devices/actions/list``). Use ``iter`` for all."""
        return self._call(Call(ops.LIST_DEVICES, body=self._list_request(request, filters)))

    @paginated
    def iter(
        self, /, request: DeviceListRequest | None = None, **filters: object
    ) -> Pager[DeviceListPage, Device]:
        """Every device matching the filters, page after page (``largestDeviceIdSeen`` cursor).

        Filters are [DeviceListRequest][thingspace_swap.models.DeviceListRequest] fields, e.g.
        ``current_state="active"``, ``service_plan="M2M4G"``, ``max_number_of_devices=500``.
        """
        first = Call(ops.LIST_DEVICES, body=self._list_request(request, filters))
        return Pager(first, _next_device_page, lambda page: page.devices)

    @endpoint
    def get(self, device: DeviceRef, *, account_name: str | None = None) -> Flow[Device | None]:
        """One device by any of its identifiers, or None when ThingSpace does not know it."""
        body = DeviceListRequest(
            account_name=account_name or self._account_name, device_id=device_id(device)
        )
        page = yield from self._call(Call(ops.LIST_DEVICES, body=body))
        return page.devices[0] if page.devices else None

    @endpoint
    def activate(
        self,
        devices: DeviceRef | Sequence[DeviceRef],
        *,
        service_plan: str,
        mdn_zip_code: str,
        account_name: str | None = None,
    ) -> Flow[RequestAccepted]:
        """Activate devices on a plan (``POST /devices/actions/activate``)."""
        body = DeviceActionRequest(
            _selection(devices),
            account_name=self._account(account_name),
            service_plan=service_plan,
            mdn_zip_code=mdn_zip_code,
        )
        return self._call(Call(ops.ACTIVATE, body=body))

    @endpoint
    def suspend(
        self,
        devices: DeviceRef | Sequence[DeviceRef],
        *,
        with_billing: bool | None = None,
        account_name: str | None = None,
    ) -> Flow[RequestAccepted]:
        """Suspend service (``POST /devices/actions/suspend``)."""
        return self._call(Call(ops.SUSPEND, body=self._action(devices, account_name, with_billing)))

    @endpoint
    def restore(
        self,
        devices: DeviceRef | Sequence[DeviceRef],
        *,
        with_billing: bool | None = None,
        account_name: str | None = None,
    ) -> Flow[RequestAccepted]:
        """Restore suspended service (``POST /devices/actions/restore``)."""
        return self._call(Call(ops.RESTORE, body=self._action(devices, account_name, with_billing)))

    @endpoint
    def deactivate(
        self,
        devices: DeviceRef | Sequence[DeviceRef],
        *,
        reason_code: str = "FF",
        etf_waiver: bool | None = None,
        account_name: str | None = None,
    ) -> Flow[RequestAccepted]:
        """Deactivate service (``POST /devices/actions/deactivate``; ``reasonCode`` ``FF``)."""
        body = DeviceActionRequest(
            _selection(devices),
            account_name=self._account(account_name),
            reason_code=reason_code,
            etf_waiver=etf_waiver,
        )
        return self._call(Call(ops.DEACTIVATE, body=body))

    @endpoint
    def change_plan(
        self,
        devices: DeviceRef | Sequence[DeviceRef],
        service_plan: str,
        *,
        current_service_plan: str | None = None,
        take_effect: str | None = None,
        account_name: str | None = None,
    ) -> Flow[RequestAccepted]:
        """Move devices to another service plan (``PUT /devices/actions/plan``)."""
        body = DeviceActionRequest(
            _selection(devices),
            account_name=self._account(account_name),
            service_plan=service_plan,
            current_service_plan=current_service_plan,
            take_effect=take_effect,
        )
        return self._call(Call(ops.CHANGE_PLAN, body=body))

    @endpoint
    def delete(
        self, devices: DeviceRef | Sequence[DeviceRef], *, account_name: str | None = None
    ) -> Flow[builtins.list[DeviceDeleteResult]]:
        """Delete deactivated devices (``POST /devices/actions/delete``), e.g. to reuse an ICCID."""
        body = DeviceDeleteRequest(_selection(devices), account_name=self._account(account_name))
        return self._call(Call(ops.DELETE, body=body))

    @endpoint
    def history(self, device: DeviceRef, *, earliest: str, latest: str) -> Flow[HistoryPage]:
        """Provisioning history of one device between two ISO 8601 times."""
        body = HistoryRequest(device_id(device), earliest=earliest, latest=latest)
        return self._call(Call(ops.HISTORY, body=body))

    def _action(
        self,
        devices: DeviceRef | Sequence[DeviceRef],
        account_name: str | None,
        with_billing: bool | None,
    ) -> DeviceActionRequest:
        return DeviceActionRequest(
            _selection(devices), account_name=self._account(account_name), with_billing=with_billing
        )

    def _list_request(
        self, request: DeviceListRequest | None, filters: dict[str, object]
    ) -> DeviceListRequest:
        if request is not None and filters:
            raise InvalidRequestError(
                "pass either a DeviceListRequest or filter keywords, not both"
            )
        if request is None:
            if "device_id" in filters and not isinstance(filters["device_id"], DeviceId):
                filters["device_id"] = device_id(filters["device_id"])  # type: ignore[arg-type]
            if isinstance(filters.get("filter"), dict):
                filters["filter"] = DeviceFilter(**filters["filter"])  # type: ignore[arg-type]
            if isinstance(filters.get("custom_fields"), dict):
                fields = filters["custom_fields"]
                filters["custom_fields"] = [KeyValue(k, v) for k, v in fields.items()]  # type: ignore[attr-defined]
            try:
                request = DeviceListRequest(**filters)  # type: ignore[arg-type]
            except TypeError as exc:
                raise InvalidRequestError(f"unknown device filter: {exc}") from None
        if request.account_name is None and self._account_name:
            request = attrs.evolve(request, account_name=self._account_name)
        return request


def _next_device_page(
    call: Call[DeviceListPage], page: DeviceListPage
) -> Call[DeviceListPage] | None:
    if not page.has_more_data:
        return None
    request = call.body
    assert isinstance(request, DeviceListRequest)
    cursor = page.largest_device_id_seen
    cursor_guard(request.largest_device_id_seen, cursor, more=True)
    return attrs.evolve(call, body=attrs.evolve(request, largest_device_id_seen=cursor))


class Plans(Resource[Mode]):
    """Service plans of an account."""

    @endpoint
    def list(self, account_name: str | None = None) -> Flow[builtins.list[ServicePlan]]:
        """``GET /plans/{accountName}``."""
        return self._call(Call(ops.LIST_PLANS, {"account_name": self._account(account_name)}))


class Accounts(Resource[Mode]):
    """Account details."""

    @endpoint
    def get(self, account_name: str | None = None) -> Flow[Account]:
        """``GET /accounts/{accountName}``."""
        return self._call(Call(ops.GET_ACCOUNT, {"account_name": self._account(account_name)}))


class Requests(Resource[Mode]):
    """Asynchronous request status."""

    @endpoint
    def status(self, request_id: str, *, account_name: str | None = None) -> Flow[RequestStatus]:
        """``GET /accounts/{accountName}/requests/{requestId}/status`` (documented for single-device
        activate, deactivate, suspend and restore)."""
        params = {"account_name": self._account(account_name), "request_id": request_id}
        return self._call(Call(ops.REQUEST_STATUS, params))


class Callbacks(Resource[Mode]):
    """Where ThingSpace posts asynchronous results."""

    @endpoint
    def register(
        self,
        url: str,
        *,
        service: str = CallbackService.CARRIER_SERVICE,
        username: str | None = None,
        password: str | None = None,
        account_name: str | None = None,
    ) -> Flow[RegisteredCallback]:
        """Register ``url`` for a service (one per service per account; replaces the old one).

        ThingSpace signs nothing: the username/password given here come back in every callback
        body, so set them and verify them on receipt.
        """
        body = CallbackRegistration(service, url, username, password)
        call = Call(ops.REGISTER_CALLBACK, {"account_name": self._account(account_name)}, body)
        return self._call(call)

    @endpoint
    def list(self, account_name: str | None = None) -> Flow[builtins.list[RegisteredCallback]]:
        """The account's registrations."""
        return self._call(Call(ops.LIST_CALLBACKS, {"account_name": self._account(account_name)}))

    @endpoint
    def deregister(
        self, service: str = CallbackService.CARRIER_SERVICE, *, account_name: str | None = None
    ) -> Flow[RegisteredCallback]:
        """Remove the registration of ``service``."""
        params = {"account_name": self._account(account_name), "service_name": service}
        return self._call(Call(ops.DEREGISTER_CALLBACK, params))


class Session(Resource[Mode]):
    """The M2M session. The client logs in by itself; these are for explicit control."""

    @endpoint
    def login(self) -> Flow[None]:
        """Log in now, exactly once (waiting while another client sharing the token cache
        logs in). Also clears the block a refused login leaves (see
        [LoginBlockedError][thingspace_swap.errors.LoginBlockedError])."""
        return self._engine.auth.login(self._engine)

    @endpoint
    def unblock(self) -> Flow[LoginBlock | None]:
        """Clear the login block in the token cache, for every client sharing it, without
        logging in: the next call that needs a session tries once. Returns the block cleared
        (None when logins were not blocked)."""
        return self._engine.auth.unblock()

    @endpoint
    def blocked(self) -> Flow[LoginBlock | None]:
        """The login block in the token cache (why, since when, set by whom), or None."""
        return self._engine.auth.blocked()

    @endpoint
    def logout(self) -> Flow[None]:
        """End the session (``POST /session/logout``); the next call logs in again."""
        return self._engine.auth.logout(self._engine)
