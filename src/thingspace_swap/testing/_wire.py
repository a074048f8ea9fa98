"""JSON shapes of the wire format: what the simulator reads from requests and writes back."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta, timezone, tzinfo
from types import MappingProxyType
from typing import Any

from ._errors import Codes, M2MError
from ._identifiers import KINDS
from ._inventory import Account, Device, HistoryEntry, Plan

__all__ = [
    "CALLBACK_KIND",
    "RESPONSE_KIND",
    "DeviceIdList",
    "account_json",
    "device_json",
    "format_time",
    "history_json",
    "opt_int",
    "opt_str",
    "parse_device_ids",
    "parse_time",
    "plan_json",
    "req_str",
]

#: A list of (lower-case kind, id) pairs as read from a request.
DeviceIdList = list[tuple[str, str]]

#: How list responses spell kinds: mixed case, as ThingSpace does (fixed, so deterministic).
RESPONSE_KIND: Mapping[str, str] = MappingProxyType(
    {
        "mdn": "mdn",
        "msisdn": "msisdn",
        "imei": "IMEI",
        "iccid": "iccId",
        "imsi": "imsi",
        "eid": "EID",
        "meid": "meid",
        "esn": "ESN",
        "min": "MIN",
    }
)

#: How callbacks spell kinds (``Iccid``, ``Imei``), as in Verizon's callback examples.
CALLBACK_KIND: Mapping[str, str] = MappingProxyType({k: k.capitalize() for k in KINDS})

#: Order of ``deviceIds`` in device objects.
_ID_ORDER = ("mdn", "msisdn", "imei", "iccid", "imsi", "eid", "meid", "esn", "min")


# Time ----------------------------------------------------------------------------------------


def format_time(epoch: float, tz: tzinfo) -> str:
    """``2019-08-07T10:42:15-04:00`` style timestamps."""
    return datetime.fromtimestamp(epoch, tz=tz).isoformat(timespec="seconds")


def parse_time(value: object, field_name: str) -> float:
    """Epoch seconds from an ISO-8601 string (``Z``, offsets, naive UTC, or a bare date)."""
    if not isinstance(value, str) or not value.strip():
        raise M2MError(Codes.REQUEST_INVALID, f"{field_name} must be an ISO-8601 date-time")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        if len(text) == 10:
            parsed = datetime.combine(date.fromisoformat(text), datetime.min.time())
        else:
            parsed = datetime.fromisoformat(text)
    except ValueError:
        raise M2MError(
            Codes.REQUEST_INVALID, f"{field_name} is not a valid date-time: {value!r}"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


# Request fields ------------------------------------------------------------------------------


def req_str(body: dict[str, Any], key: str, code: str = Codes.REQUEST_INVALID) -> str:
    """A required non-empty string field."""
    value = body.get(key)
    if not isinstance(value, str) or not value.strip():
        raise M2MError(code, f"{key} is required")
    return value.strip()


def opt_str(body: dict[str, Any], key: str) -> str | None:
    """An optional string field (empty means absent)."""
    value = body.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise M2MError(Codes.REQUEST_INVALID, f"{key} must be a string")
    return value.strip()


def opt_int(body: dict[str, Any], key: str, minimum: int = 0) -> int | None:
    """An optional integer field; numeric strings are accepted."""
    value = body.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise M2MError(Codes.REQUEST_INVALID, f"{key} must be an integer")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or value < minimum:
        raise M2MError(Codes.REQUEST_INVALID, f"{key} must be an integer >= {minimum}")
    return value


def parse_device_id(item: object, where: str) -> tuple[str, str]:
    """One ``{"id", "kind"}`` object, kind lower-cased and checked."""
    if not isinstance(item, dict):
        raise M2MError(Codes.REQUEST_INVALID, f"{where} must be an object with id and kind")
    kind = item.get("kind")
    ident = item.get("id")
    if not isinstance(kind, str) or kind.lower() not in KINDS:
        raise M2MError(Codes.KIND_INVALID, f"{where}: unknown device kind {kind!r}")
    if not isinstance(ident, str) or not ident.strip():
        raise M2MError(Codes.IDENTIFIER_INVALID, f"{where}: id must be a non-empty string")
    return kind.lower(), ident.strip()


def parse_device_ids(value: object, where: str, *, required: bool = True) -> DeviceIdList:
    """A ``deviceIds`` array; duplicate kinds are rejected."""
    if value is None and not required:
        return []
    if not isinstance(value, list) or (required and not value):
        raise M2MError(Codes.REQUEST_INVALID, f"{where} must be a non-empty array")
    ids = [parse_device_id(item, where) for item in value]
    kinds = [kind for kind, _ in ids]
    if len(set(kinds)) != len(kinds):
        raise M2MError(Codes.REQUEST_INVALID, f"{where} names the same kind twice")
    return ids


# Response bodies -----------------------------------------------------------------------------


def ids_json(ids: DeviceIdList, spelling: Mapping[str, str] | None = None) -> list[dict[str, str]]:
    """``[{"id", "kind"}]`` with kinds spelled through ``spelling`` (lower-case if None)."""
    return [{"id": value, "kind": (spelling or {}).get(kind, kind)} for kind, value in ids]


def device_ids(device: Device) -> DeviceIdList:
    """The device's identifiers in response order."""
    return [(kind, device.identifiers[kind]) for kind in _ID_ORDER if kind in device.identifiers]


def _billing_cycle_end(account: Account, now: float, tz: tzinfo) -> str:
    today = datetime.fromtimestamp(now, tz=tz)
    day = account.billing_cycle_day
    end = today.replace(day=day, hour=20, minute=0, second=0, microsecond=0)
    if end <= today:
        end = (end.replace(day=1) + timedelta(days=32)).replace(day=day)
    return end.isoformat(timespec="seconds")


def device_json(device: Device, account: Account, now: float, tz: tzinfo) -> dict[str, Any]:
    """A device object exactly in the shape of ``POST /devices/actions/list``."""
    body: dict[str, Any] = {
        "accountName": device.account,
        "deviceIds": ids_json(device_ids(device), RESPONSE_KIND),
        "carrierInformations": [
            {"carrierName": "Verizon Wireless", "servicePlan": device.plan, "state": device.state}
        ],
        "connected": device.connected,
        "createdAt": format_time(device.created_at, tz),
        "ipAddress": device.ip_address,
        "groupNames": list(device.groups),
        "customFields": [{"key": k, "value": v} for k, v in device.custom_fields.items()],
        "extendedAttributes": [
            {"key": "PrimaryPlaceOfUseCountry", "value": "US"},
            {"key": "DeviceId", "value": str(device.device_id)},
            {"key": "SkuNumber", "value": ""},
        ],
    }
    if device.last_activation_at is not None:
        body["lastActivationDate"] = format_time(device.last_activation_at, tz)
    body["billingCycleEndDate"] = _billing_cycle_end(account, now, tz)
    return body


def plan_json(plan: Plan) -> dict[str, Any]:
    """``{"name", "code", "sizeKb", "carrierServicePlanCode"}``."""
    return {
        "name": plan.name,
        "code": plan.code,
        "sizeKb": plan.size_kb,
        "carrierServicePlanCode": plan.carrier_service_plan_code,
    }


def account_json(account: Account) -> dict[str, Any]:
    """The ``GET /accounts/{accountName}`` object."""
    return {
        "accountName": account.name,
        "accountNumber": account.name,
        "organizationName": account.organization_name,
        "isProvisioningAllowed": True,
        "carriers": ["Verizon Wireless"],
        "features": list(account.features),
        "iPPools": [dict(pool) for pool in account.ip_pools],
        "servicePlans": [plan_json(plan) for plan in account.plans.values()],
    }


def history_json(entry: HistoryEntry, tz: tzinfo) -> dict[str, Any]:
    """One provisioning-history entry."""
    return {
        "occurredAt": format_time(entry.occurred_at, tz),
        "status": entry.status,
        "eventBy": entry.event_by,
        "eventType": entry.event_type,
        "servicePlan": entry.service_plan,
        "mdn": entry.mdn,
        "msisdn": entry.msisdn,
        "extendedAttributes": [{"key": k, "value": v} for k, v in entry.extended_attributes],
    }
