"""Read-only endpoints: device listing with cursor paging, history, plans, account, status."""

from __future__ import annotations

from typing import Any

from ._errors import Codes, M2MError
from ._identifiers import KINDS
from ._inventory import Device
from ._sim_core import SimulatorCore
from ._wire import (
    account_json,
    device_json,
    history_json,
    opt_int,
    opt_str,
    parse_device_id,
    parse_time,
    plan_json,
)

__all__ = ["account_info", "history", "list_devices", "plans", "request_status"]

#: Request types the status endpoint is documented for.
_STATUS_ACTIONS = ("activate", "suspend", "restore", "deactivate")


def list_devices(core: SimulatorCore, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """``POST /devices/actions/list``: filtered, cursor-paged by ``DeviceId``."""
    account_name = opt_str(body, "accountName")
    if account_name is not None:
        core.account(account_name)
    raw_id = body.get("deviceId")
    selector = None if raw_id is None else [parse_device_id(raw_id, "deviceId")]
    filters = _identifier_filters(body.get("filter"))
    state = opt_str(body, "currentState")
    group = opt_str(body, "groupName")
    plan = opt_str(body, "servicePlan")
    custom = _custom_fields(body.get("customFields"))
    earliest = None if body.get("earliest") is None else parse_time(body["earliest"], "earliest")
    latest = None if body.get("latest") is None else parse_time(body["latest"], "latest")
    size = opt_int(body, "maxNumberOfDevices", minimum=1) or core.limits.default_page_size
    size = min(size, core.limits.max_page_size)
    cursor = opt_int(body, "largestDeviceIdSeen") or 0

    if selector is not None:
        one = core.inventory.resolve(selector, account_name)
        candidates = iter([] if one is None else [one])
    else:
        candidates = core.inventory.devices_after(cursor)
    page: list[Device] = []
    more = False
    for device in candidates:
        if device.device_id <= cursor:
            continue
        if account_name is not None and device.account != account_name:
            continue
        if state is not None and device.state.lower() != state.lower():
            continue
        if group is not None and group not in device.groups:
            continue
        if plan is not None and device.plan != plan:
            continue
        if any(device.custom_fields.get(k) != v for k, v in custom):
            continue
        if earliest is not None and device.created_at < earliest:
            continue
        if latest is not None and device.created_at > latest:
            continue
        if not all(_matches(device, *f) for f in filters):
            continue
        if len(page) == size:
            more = True
            break
        page.append(device)
    now = core.now()
    devices = [device_json(d, core.inventory.accounts[d.account], now, core.tz) for d in page]
    return (202 if more else 200), {"hasMoreData": more, "devices": devices}


def _identifier_filters(raw: object) -> list[tuple[str, str, str]]:
    if raw is None:
        return []
    if not isinstance(raw, dict):
        raise M2MError(Codes.REQUEST_INVALID, "filter must be an object")
    items = raw.get("deviceIdentifierFilters") or []
    if not isinstance(items, list):
        raise M2MError(Codes.REQUEST_INVALID, "deviceIdentifierFilters must be an array")
    filters = []
    for item in items:
        if not isinstance(item, dict):
            raise M2MError(Codes.REQUEST_INVALID, "a deviceIdentifierFilter must be an object")
        kind = item.get("kind")
        if not isinstance(kind, str) or kind.lower() not in KINDS:
            raise M2MError(Codes.KIND_INVALID, f"Unknown device kind {kind!r}")
        ops = [op for op in ("contains", "startswith", "endswith") if op in item]
        if len(ops) != 1 or not isinstance(item[ops[0]], str):
            raise M2MError(
                Codes.REQUEST_INVALID,
                "a deviceIdentifierFilter needs exactly one of contains/startswith/endswith",
            )
        filters.append((kind.lower(), ops[0], str(item[ops[0]])))
    return filters


def _custom_fields(raw: object) -> list[tuple[str, str]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise M2MError(Codes.REQUEST_INVALID, "customFields must be an array")
    fields = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise M2MError(Codes.REQUEST_INVALID, "a custom field needs a key and a value")
        fields.append((item["key"], str(item.get("value", ""))))
    return fields


def history(core: SimulatorCore, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """``POST /devices/history/actions/list``: one device's provisioning events."""
    raw = body.get("deviceId")
    if raw is None:
        raise M2MError(Codes.REQUEST_INVALID, "deviceId is required")
    selector = [parse_device_id(raw, "deviceId")]
    account_name = opt_str(body, "accountName")
    device = core.inventory.resolve(selector, account_name)
    if device is None:
        raise M2MError(Codes.DEVICE_NOT_FOUND, "The device was not found")
    earliest = None if body.get("earliest") is None else parse_time(body["earliest"], "earliest")
    latest = None if body.get("latest") is None else parse_time(body["latest"], "latest")
    entries = [
        e
        for e in device.history
        if (earliest is None or e.occurred_at >= earliest)
        and (latest is None or e.occurred_at <= latest)
    ]
    size = core.limits.history_page_size
    more = len(entries) > size
    return (202 if more else 200), {
        "provisioningHistory": [history_json(e, core.tz) for e in entries[:size]],
        "hasMoreData": more,
    }


def plans(core: SimulatorCore, account_name: str) -> list[dict[str, Any]]:
    """``GET /plans/{accountName}``."""
    return [plan_json(p) for p in core.account(account_name).plans.values()]


def account_info(core: SimulatorCore, account_name: str) -> dict[str, Any]:
    """``GET /accounts/{accountName}``."""
    return account_json(core.account(account_name))


def request_status(core: SimulatorCore, account_name: str, request_id: str) -> dict[str, Any]:
    """``GET /accounts/{accountName}/requests/{requestId}/status``."""
    core.account(account_name)
    request = core.requests.get(request_id)
    if (
        request is None
        or request.account != account_name
        or (not core.options.request_status_for_all and request.action not in _STATUS_ACTIONS)
    ):
        raise M2MError(Codes.REQUEST_NOT_FOUND, f"Request {request_id} was not found")
    return {"requestId": request.request_id, "status": request.status}


def _matches(device: Device, kind: str, op: str, needle: str) -> bool:
    value = device.identifiers.get(kind)
    if value is None:
        return False
    if op == "contains":
        return needle in value
    if op == "startswith":
        return value.startswith(needle)
    return value.endswith(needle)
