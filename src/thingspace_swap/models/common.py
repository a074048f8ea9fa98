"""Small shapes shared by many requests and responses."""

from __future__ import annotations

import sys
from enum import Enum

import attrs

__all__ = ["ChangeOption", "DeviceId", "DeviceSelection", "KeyValue", "RequestAccepted"]


def _lower(kind: str) -> str:
    # a handful of kinds, one shared string each (a listing of 100,000 devices holds 500,000)
    return sys.intern(kind.lower())


@attrs.frozen(cache_hash=True)
class DeviceId:
    """One identifier of a device. ``kind`` is kept lower-case: ThingSpace mixes cases in responses
    (``iccId``, ``Iccid``) and expects lower case in requests."""

    id: str
    kind: str = attrs.field(converter=_lower)

    @classmethod
    def of(cls, identifier: str, kind: str | None = None) -> DeviceId:
        """Build from an identifier value type (``Iccid(...)``) or from a string and a kind."""
        resolved = kind or getattr(identifier, "kind", None)
        if not resolved:
            raise TypeError("DeviceId.of needs a kind for a plain string identifier")
        return cls(str(identifier), resolved)


@attrs.frozen
class DeviceSelection:
    """``{"deviceIds": [...]}``: one device, named by one or more of its identifiers."""

    device_ids: list[DeviceId]


@attrs.frozen
class KeyValue:
    """A ``{"key", "value"}`` pair (custom fields, extended attributes)."""

    key: str
    value: str = ""


@attrs.frozen
class RequestAccepted:
    """ThingSpace accepted an asynchronous request; its result arrives as a callback."""

    request_id: str


class ChangeOption(str, Enum):
    """The ``change4gOption`` values, spelled exactly as ThingSpace expects."""

    CHANGE_ICCID = "ChangeICCID"
    CHANGE_IMEI = "ChangeIMEI"
    CHANGE_IMEI_AND_ICCID = "ChangeIMEIandICCID"
    CHANGE_MSISDN = "ChangeMSISDN"
    THREE_G_TO_FOUR_G = "3Gto4G"
    FOUR_G_TO_THREE_G = "4Gto3G"
    CHANGE_IMEI_AND_EID = "ChangeIMEIandEID"
