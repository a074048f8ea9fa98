"""State-changing device requests: validate synchronously (400s), then queue on the core.

Checks that depend on the whole request are answered at once; per-device rules are re-checked
when the request is applied, so a device that changed in between fails asynchronously.
"""

from __future__ import annotations

from typing import Any

from ._auth import Session
from ._errors import Codes, M2MError
from ._identifiers import identifier_problem
from ._inventory import Account, Device
from ._rules import CHANGE_OPTIONS, change_device_fault, new_device_fault, new_ids_fault
from ._sim_core import SimulatorCore
from ._wire import DeviceIdList, ids_json, opt_str, parse_device_ids, req_str

__all__ = ["change_identifier", "delete_devices", "provision"]

_SERVICE_TYPES = ("3g", "4g", "5g")


def change_identifier(
    core: SimulatorCore, session: Session, service_type: str, body: dict[str, Any]
) -> dict[str, Any]:
    """``PUT /devices/{serviceType}/actions/deviceId``: validate, then queue the swap.

    Every call is counted against the line its ``deviceIds`` name (by current or former
    identifiers) before any check, so ``sim.submissions`` sees rejected resubmissions too.
    """
    core.count_submission(_selector_or_none(body))
    if service_type.lower() not in _SERVICE_TYPES:
        raise M2MError(Codes.SERVICE_TYPE_INVALID, f"Unknown service type {service_type!r}")
    option = _change_option(body)
    account_name = opt_str(body, "accountName")
    if account_name is not None:
        core.account(account_name)
    selector = parse_device_ids(body.get("deviceIds"), "deviceIds")
    new_ids = parse_device_ids(body.get("deviceIdsTo"), "deviceIdsTo", required=False)
    params: dict[str, Any] = {"option": option, "accountName": account_name, "deviceIdsTo": new_ids}
    if option == "ChangeMSISDN":
        params["npaNxx"] = _check_number_request(body, new_ids)
    else:
        _check_new_hardware(option, new_ids)
    if CHANGE_OPTIONS[option].needs_smsr_oid:
        params["smsrOid"] = req_str(body, "smsrOid", Codes.SMSR_OID_INVALID)
    device = core.inventory.resolve(selector, account_name)
    if device is None:
        raise M2MError(Codes.DEVICE_NOT_FOUND, "The device was not found")
    plan = opt_str(body, "servicePlan")
    if plan is not None and plan not in core.account(device.account).plans:
        raise M2MError(Codes.SERVICE_PLAN_INVALID, f"Unknown service plan {plan!r}")
    params["servicePlan"] = plan
    fault = change_device_fault(device) or new_ids_fault(
        core.inventory, new_ids, strict_spares=core.options.strict_spares
    )
    if fault is not None:
        raise M2MError(*fault)
    return core.submit(session, device.account, "changeIdentifier", [selector], params)


def _selector_or_none(body: dict[str, Any]) -> DeviceIdList | None:
    try:
        return parse_device_ids(body.get("deviceIds"), "deviceIds")
    except M2MError:
        return None


def _change_option(body: dict[str, Any]) -> str:
    """The ``change4gOption`` (or ``Change4GOption``) value, spelled exactly."""
    value = next((v for k, v in body.items() if k.lower() == "change4goption"), None)
    if not isinstance(value, str) or value not in CHANGE_OPTIONS:
        raise M2MError(
            Codes.CHANGE_OPTION_INVALID,
            f"change4gOption must be one of {sorted(CHANGE_OPTIONS)}; got {value!r}",
        )
    return value


def _check_number_request(body: dict[str, Any], new_ids: DeviceIdList) -> str | None:
    """Check a ChangeMSISDN request; returns its ``npaNxx``, if any."""
    if new_ids:
        raise M2MError(
            Codes.REQUEST_INVALID,
            "ChangeMSISDN takes no deviceIdsTo: the MSISDN cannot change with hardware",
        )
    zip_code = opt_str(body, "zipCode")
    npa_nxx = opt_str(body, "npaNxx")
    if zip_code is not None and not (zip_code.isdigit() and len(zip_code) == 5):
        raise M2MError(Codes.ZIP_CODE_INVALID, "zipCode must have 5 digits")
    if npa_nxx is not None and not (npa_nxx.isdigit() and len(npa_nxx) == 6):
        raise M2MError(Codes.ZIP_CODE_INVALID, "npaNxx must have 6 digits")
    if zip_code is None and npa_nxx is None and body.get("assignNonGeoMdn") is not True:
        raise M2MError(
            Codes.ZIP_CODE_INVALID, "ChangeMSISDN needs zipCode, npaNxx or assignNonGeoMdn"
        )
    return npa_nxx


def _check_new_hardware(option: str, new_ids: DeviceIdList) -> None:
    """``deviceIdsTo`` must hold exactly the kinds the option changes, each well formed."""
    spec = CHANGE_OPTIONS[option]
    if not new_ids:
        raise M2MError(Codes.REQUEST_INVALID, f"{option} requires deviceIdsTo")
    kinds = {kind for kind, _ in new_ids}
    if not kinds <= spec.allowed:
        raise M2MError(
            Codes.REQUEST_INVALID, f"{option} cannot change {sorted(kinds - spec.allowed)}"
        )
    if not spec.required <= kinds:
        raise M2MError(
            Codes.IDENTIFIER_INVALID, f"{option} needs a new {' and '.join(sorted(spec.required))}"
        )
    for kind, value in new_ids:
        problem = identifier_problem(kind, value)
        if problem is not None:
            raise M2MError(Codes.IDENTIFIER_INVALID, f"{kind} {value}: {problem}")


def provision(
    core: SimulatorCore, session: Session, action: str, body: dict[str, Any]
) -> dict[str, Any]:
    """``/devices/actions/{activate,suspend,restore,deactivate,plan}``."""
    account_name = opt_str(body, "accountName")
    if action in ("activate", "deactivate") and account_name is None:
        raise M2MError(Codes.REQUEST_INVALID, f"accountName is required to {action}")
    account = None if account_name is None else core.account(account_name)
    raw = body.get("devices")
    if not isinstance(raw, list) or not raw:
        raise M2MError(Codes.REQUEST_INVALID, "devices must be a non-empty array")
    if len(raw) > core.limits.max_devices_per_request:
        raise M2MError(
            Codes.TOO_MANY_DEVICES,
            f"At most {core.limits.max_devices_per_request} devices per request",
        )
    selectors = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise M2MError(Codes.REQUEST_INVALID, f"devices[{index}] must be an object")
        selectors.append(parse_device_ids(item.get("deviceIds"), f"devices[{index}].deviceIds"))
    params: dict[str, Any] = {}
    if action in ("activate", "plan"):
        plan = req_str(body, "servicePlan", Codes.SERVICE_PLAN_INVALID)
        params["servicePlan"] = plan
        params["currentServicePlan"] = opt_str(body, "currentServicePlan")
    if action == "activate":
        zip_code = req_str(body, "mdnZipCode", Codes.ZIP_CODE_INVALID)
        if not (zip_code.isdigit() and len(zip_code) == 5):
            raise M2MError(Codes.ZIP_CODE_INVALID, "mdnZipCode must have 5 digits")
    if action == "deactivate":
        params["reasonCode"] = req_str(body, "reasonCode")
    devices: list[Device | None] = []
    strict = core.options.strict_spares
    for selector in selectors:
        device = core.inventory.resolve(selector, account_name)
        if device is None and not (
            action == "activate"
            and new_device_fault(core.inventory, selector, strict_spares=strict) is None
        ):
            raise M2MError(
                Codes.DEVICE_NOT_FOUND,
                f"Device {selector[0][0]} {selector[0][1]} was not found",
            )
        devices.append(device)
    owner = account or core.account(next(d.account for d in devices if d is not None))
    if "servicePlan" in params and params["servicePlan"] not in owner.plans:
        raise M2MError(
            Codes.SERVICE_PLAN_INVALID, f"Unknown service plan {params['servicePlan']!r}"
        )
    if action == "activate":
        _count_activate_request(core, owner)
    return core.submit(session, owner.name, action, selectors, params)


def _count_activate_request(core: SimulatorCore, account: Account) -> None:
    now = core.now()
    recent = [ts for ts in account.activate_requests if now - ts < 60.0]
    if len(recent) >= core.limits.activate_requests_per_minute:
        account.activate_requests = recent
        raise M2MError(
            Codes.MAX_REQUESTS_EXCEEDED,
            f"At most {core.limits.activate_requests_per_minute} activate requests per minute",
        )
    account.activate_requests = [*recent, now]


def delete_devices(core: SimulatorCore, body: dict[str, Any]) -> list[dict[str, Any]]:
    """``POST /devices/actions/delete``: synchronous, one result per device."""
    account_name = opt_str(body, "accountName")
    if account_name is not None:
        core.account(account_name)
    raw = body.get("devicesToDelete", body.get("devices"))
    if not isinstance(raw, list) or not raw:
        raise M2MError(Codes.REQUEST_INVALID, "devicesToDelete must be a non-empty array")
    results = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise M2MError(Codes.REQUEST_INVALID, f"devicesToDelete[{index}] must be an object")
        selector = parse_device_ids(item.get("deviceIds"), f"devicesToDelete[{index}]")
        device = core.inventory.resolve(selector, account_name)
        entry: dict[str, Any] = {"deviceIds": ids_json(selector)}
        if device is None:
            entry.update(status="Failed", message="The device was not found.")
        elif device.state != "deactive":
            entry.update(status="Failed", message="The device is not in deactivate state.")
        else:
            core.inventory.remove(device)
            entry["status"] = "Success"
        results.append(entry)
    return results
