"""The account's device listing read for the devices a request names (validation's bulk
lookup), page after page, from the decoded JSON.

A listing of 125,000 devices for a batch of 100,000: each device is looked at only for its
identifiers and its ``DeviceId`` cursor, and a device the request names is kept with its
identifiers, account and carrier information (its state and plan), the fields validation
reads. A device whose fields are not in their plain shape (a number for a string, a missing
identifier) is decoded by the client's full model instead, which coerces it or raises
[DecodeError][thingspace_swap.errors.DecodeError] as every other read does.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import attrs

from .._core.endpoint import cursor_guard
from .._core.operations import LIST_DEVICES_JSON, Call
from ..errors import DecodeError
from ..models import CarrierInformation, Device, DeviceId, DeviceListRequest
from ..models._converter import structure

__all__ = ["ListingReader"]


class _Unusual(Exception):
    """A device not in the plain shape: the full model decodes it."""


class ListingReader:
    """Keeps the listed devices that carry an identifier in ``wanted``, by that identifier."""

    def __init__(self, wanted: Collection[DeviceId]) -> None:
        self._wanted = {(ref.id, ref.kind): ref for ref in wanted}  # (kept: shared, not copied)
        self._texts: dict[str, str] = {}  # one copy of each account, plan, state...
        self.found: dict[DeviceId, Device] = {}

    def first(self, call: Call[Any]) -> Call[Any]:
        """The listing's first call (``call``), answered as JSON."""
        return attrs.evolve(call, operation=LIST_DEVICES_JSON)

    def read(self, call: Call[Any], page: Any) -> Call[Any] | None:
        """Keep the wanted devices of ``page`` (the answer to ``call``); the next page's call,
        or None after the last."""
        if not isinstance(page, dict):
            raise DecodeError(f"unexpected DeviceListPage in ThingSpace response: {page!r:.60}")
        devices = page.get("devices") or []
        if not isinstance(devices, list):
            raise DecodeError("unexpected DeviceListPage in ThingSpace response: devices")
        cursor: int | None = None
        for item in devices:
            number = self._keep(item)
            if number is not None and (cursor is None or number > cursor):
                cursor = number
        more = page.get("hasMoreData")
        if more is None or not structure(more, bool):
            return None
        request = call.body
        assert isinstance(request, DeviceListRequest)
        cursor_guard(request.largest_device_id_seen, cursor, more=True)
        return attrs.evolve(call, body=attrs.evolve(request, largest_device_id_seen=cursor))

    def _keep(self, item: Any) -> int | None:
        """Keep ``item`` if it is wanted; its ``DeviceId`` number."""
        try:
            names = _names(item)
            number = _number(item)
            wanted = any(name in self._wanted for name in names)
            device = _slim(item, names, self._wanted, self._texts) if wanted else None
        except _Unusual:
            device = structure(item, Device)
            number = device.device_number
        if device is not None:
            for name in device.device_ids:
                if (name.id, name.kind) in self._wanted:
                    self.found[name] = device
        return number


def _names(item: Any) -> list[tuple[str, str]]:
    """The device's identifiers as (id, lower-case kind)."""
    if type(item) is not dict:
        raise _Unusual
    names = []
    for entry in item.get("deviceIds") or ():
        if type(entry) is not dict:
            raise _Unusual
        value, kind = entry.get("id"), entry.get("kind")
        if type(value) is not str or type(kind) is not str:
            raise _Unusual
        names.append((value, kind.lower()))
    return names


def _number(item: dict[str, Any]) -> int | None:
    """The device's ``DeviceId`` extended attribute (the listing's cursor)."""
    for attribute in item.get("extendedAttributes") or ():
        if type(attribute) is not dict or type(attribute.get("key")) is not str:
            raise _Unusual
        if attribute["key"].lower() == "deviceid":
            value = attribute.get("value")
            if type(value) is not str:
                raise _Unusual
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _slim(
    item: dict[str, Any],
    names: list[tuple[str, str]],
    wanted: dict[tuple[str, str], DeviceId],
    texts: dict[str, str],
) -> Device:
    """The device with its identifiers (the wanted ones as the request named them), account and
    carrier information (their texts shared through ``texts``)."""
    account = item.get("accountName")
    if account is not None and type(account) is not str:
        raise _Unusual
    carriers = []
    for info in item.get("carrierInformations") or ():
        if type(info) is not dict:
            raise _Unusual
        fields = [info.get("carrierName"), info.get("servicePlan"), info.get("state")]
        if any(value is not None and type(value) is not str for value in fields):
            raise _Unusual
        carriers.append(CarrierInformation(*(texts.setdefault(v, v) if v else v for v in fields)))
    return Device(
        device_ids=[wanted.get(name) or DeviceId(*name) for name in names],
        account_name=texts.setdefault(account, account) if account else account,
        carrier_informations=carriers,
    )
