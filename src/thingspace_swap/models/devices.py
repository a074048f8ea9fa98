"""Devices: the inventory record, listing with its cursor, and the requests that change devices."""

from __future__ import annotations

import re

import attrs

from ..errors import InvalidRequestError
from .common import ChangeOption, DeviceId, DeviceSelection, KeyValue

__all__ = [
    "CarrierInformation",
    "ChangeIdentifierRequest",
    "Device",
    "DeviceActionRequest",
    "DeviceDeleteRequest",
    "DeviceDeleteResult",
    "DeviceFilter",
    "DeviceListPage",
    "DeviceListRequest",
    "HistoryEntry",
    "HistoryPage",
    "HistoryRequest",
    "IdentifierFilter",
]


@attrs.frozen
class CarrierInformation:
    """The line's carrier, plan and state (``active``, ``suspend``, ``deactive``...)."""

    carrier_name: str | None = None
    service_plan: str | None = None
    state: str | None = None


@attrs.frozen
class Device:
    """A device as ThingSpace lists it. Unknown keys are ignored."""

    device_ids: list[DeviceId] = attrs.Factory(list)
    account_name: str | None = None
    carrier_informations: list[CarrierInformation] = attrs.Factory(list)
    connected: bool | None = None
    created_at: str | None = None
    ip_address: str | None = None
    group_names: list[str] = attrs.Factory(list)
    custom_fields: list[KeyValue] = attrs.Factory(list)
    extended_attributes: list[KeyValue] = attrs.Factory(list)
    last_activation_date: str | None = None
    billing_cycle_end_date: str | None = None

    def identifier(self, kind: str) -> str | None:
        """The device's identifier of ``kind`` (compared case-insensitively), or None."""
        wanted = kind.lower()
        for name in self.device_ids:
            if name.kind == wanted:
                return name.id
        return None

    @property
    def iccid(self) -> str | None:
        return self.identifier("iccid")

    @property
    def imei(self) -> str | None:
        return self.identifier("imei")

    @property
    def mdn(self) -> str | None:
        return self.identifier("mdn")

    @property
    def state(self) -> str | None:
        """The first carrier's state, lower-case."""
        info = self.carrier_informations
        return info[0].state.lower() if info and info[0].state else None

    @property
    def service_plan(self) -> str | None:
        info = self.carrier_informations
        return info[0].service_plan if info else None

    @property
    def device_number(self) -> int | None:
        """ThingSpace's internal numeric ``DeviceId`` (extended attribute), the listing cursor."""
        for attribute in self.extended_attributes:
            if attribute.key.lower() == "deviceid":
                try:
                    return int(attribute.value)
                except ValueError:
                    return None
        return None


@attrs.frozen
class IdentifierFilter:
    """Match devices whose identifier of ``kind`` contains, starts or ends with a value."""

    kind: str
    contains: str | None = None
    startswith: str | None = None
    endswith: str | None = None


@attrs.frozen
class DeviceFilter:
    device_identifier_filters: list[IdentifierFilter] = attrs.Factory(list)


@attrs.frozen
class DeviceListRequest:
    """Body of ``POST /devices/actions/list``."""

    account_name: str | None = None
    device_id: DeviceId | None = None
    filter: DeviceFilter | None = None
    current_state: str | None = None
    group_name: str | None = None
    service_plan: str | None = None
    custom_fields: list[KeyValue] | None = None
    earliest: str | None = None
    latest: str | None = None
    max_number_of_devices: int | None = None
    largest_device_id_seen: int | None = None


@attrs.frozen
class DeviceListPage:
    """One page of devices; ``has_more_data`` means another page follows (HTTP 202)."""

    devices: list[Device] = attrs.Factory(list)
    has_more_data: bool = False

    @property
    def largest_device_id_seen(self) -> int | None:
        """The cursor for the next page: the largest ``DeviceId`` on this page."""
        numbers = [n for n in (d.device_number for d in self.devices) if n is not None]
        return max(numbers) if numbers else None


def _change_option(value: ChangeOption | str) -> ChangeOption:
    try:
        return ChangeOption(value)
    except ValueError:
        known = ", ".join(option.value for option in ChangeOption)
        raise InvalidRequestError(f"unknown change4gOption {value!r}; one of: {known}") from None


@attrs.frozen
class ChangeIdentifierRequest:
    """Body of ``PUT /devices/{serviceType}/actions/deviceId`` (the swap).

    Checked on construction: ``device_ids_to`` is required except for ``ChangeMSISDN`` (where it
    must be absent), ``smsr_oid`` for ``ChangeIMEIandEID``, ``npa_nxx`` is six digits.
    """

    device_ids: list[DeviceId]
    change4g_option: ChangeOption = attrs.field(converter=_change_option)
    device_ids_to: list[DeviceId] | None = None
    service_plan: str | None = None
    zip_code: str | None = None
    npa_nxx: str | None = None
    assign_non_geo_mdn: bool | None = None
    smsr_oid: str | None = None

    def __attrs_post_init__(self) -> None:
        option = self.change4g_option
        if not self.device_ids:
            raise InvalidRequestError("change identifier needs the device's current identifier")
        if option is ChangeOption.CHANGE_MSISDN:
            if self.device_ids_to:
                raise InvalidRequestError("ChangeMSISDN takes no new device identifiers")
        elif not self.device_ids_to:
            raise InvalidRequestError(f"{option.value} needs the new identifier(s) (deviceIdsTo)")
        if option is ChangeOption.CHANGE_IMEI_AND_EID and not self.smsr_oid:
            raise InvalidRequestError("ChangeIMEIandEID needs smsr_oid")
        if option is ChangeOption.CHANGE_IMEI_AND_ICCID:
            kinds = {d.kind for d in self.device_ids_to or []}
            if not {"imei", "iccid"} <= kinds:
                raise InvalidRequestError("ChangeIMEIandICCID needs both a new imei and iccid")
        if self.npa_nxx is not None and not re.fullmatch(r"[0-9]{6}", self.npa_nxx):
            raise InvalidRequestError(f"npa_nxx must be 6 digits, got {self.npa_nxx!r}")


@attrs.frozen
class DeviceActionRequest:
    """Body of activate, suspend, restore, deactivate and plan change: devices plus options."""

    devices: list[DeviceSelection]
    account_name: str | None = None
    service_plan: str | None = None
    mdn_zip_code: str | None = None
    reason_code: str | None = None
    etf_waiver: bool | None = None
    with_billing: bool | None = None
    current_service_plan: str | None = None
    take_effect: str | None = None
    group_name: str | None = None
    custom_fields: list[KeyValue] | None = None


@attrs.frozen
class DeviceDeleteRequest:
    """Body of ``POST /devices/actions/delete`` (deactivated devices only)."""

    devices_to_delete: list[DeviceSelection]
    account_name: str | None = None


@attrs.frozen
class DeviceDeleteResult:
    """The outcome of deleting one device."""

    device_ids: list[DeviceId] = attrs.Factory(list)
    status: str | None = None
    message: str | None = None


@attrs.frozen
class HistoryRequest:
    """Body of ``POST /devices/history/actions/list``."""

    device_id: DeviceId
    earliest: str
    latest: str


@attrs.frozen
class HistoryEntry:
    """One provisioning event of a device."""

    occurred_at: str | None = None
    status: str | None = None
    event_by: str | None = None
    event_type: str | None = None
    service_plan: str | None = None
    mdn: str | None = None
    msisdn: str | None = None
    extended_attributes: list[KeyValue] = attrs.Factory(list)


@attrs.frozen
class HistoryPage:
    provisioning_history: list[HistoryEntry] = attrs.Factory(list)
    has_more_data: bool = False
