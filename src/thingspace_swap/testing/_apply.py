"""Applying a due asynchronous request to one device: the rules' checks, then their effects.

An ``Applier`` turns one ``DeviceResult`` into an ``Outcome`` (what changed, the fault,
the callback's response) and writes the device's provisioning history. It knows nothing of
time beyond the ``now`` it is given, nor of callbacks or HTTP.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from types import MappingProxyType

from ._errors import Codes
from ._inventory import Device, HistoryEntry, Inventory
from ._requests import AsyncRequest, CoreOptions, DeviceResult, Outcome
from ._rules import (
    NOT_FOUND,
    action_fault,
    apply_action,
    apply_change,
    change_device_fault,
    new_device_fault,
    new_ids_fault,
)
from ._wire import DeviceIdList, device_ids, ids_json

__all__ = ["Applier"]

#: Actions of ``/devices/actions/{action}`` and their provisioning-history event types.
_EVENT_TYPES: Mapping[str, str] = MappingProxyType(
    {
        "activate": "Activate",
        "suspend": "Suspend",
        "restore": "Restore",
        "deactivate": "Deactivate",
        "plan": "Service Plan Change",
        "changeIdentifier": "Change Identifier",
    }
)
_RESPONSE_KEYS: Mapping[str, str] = MappingProxyType(
    {
        "activate": "activateResponse",
        "suspend": "suspendResponse",
        "restore": "restoreResponse",
        "deactivate": "deactivateResponse",
        "plan": "changeServicePlanResponse",
    }
)
_HARDWARE_KINDS = ("iccid", "imei", "eid", "meid", "esn")


class Applier:
    """Applies requests to the inventory, by the options' rules."""

    def __init__(
        self,
        inventory: Inventory,
        rng: random.Random,
        options: CoreOptions,
        former: dict[tuple[str, str], Device],
    ) -> None:
        self.inventory = inventory
        self.rng = rng
        self.options = options
        #: Where a change of identifier notes the identifiers a device had before it.
        self.former = former

    def apply(self, request: AsyncRequest, result: DeviceResult, now: float) -> Outcome:
        """Apply ``request`` to the device ``result`` names, and record it in its history."""
        if request.action == "changeIdentifier":
            outcome = self._change(request, result)
        else:
            outcome = self._action(request, result, now)
        if outcome.device is not None:
            extra = dict(outcome.extra)
            if outcome.fault:
                extra["FaultCode"] = outcome.fault[0]
            status = "Failed" if outcome.fault else "Success"
            self.record(outcome.device, request.action, status, request.event_by, extra, now)
        return outcome

    def record(
        self,
        device: Device,
        action: str,
        status: str,
        event_by: str,
        extra: dict[str, str],
        now: float,
    ) -> None:
        """Add a provisioning-history event (keeping the latest ``max_history``)."""
        history = device.history
        history.append(
            HistoryEntry(
                occurred_at=now,
                event_type=_EVENT_TYPES[action],
                status=status,
                event_by=event_by,
                service_plan=device.plan,
                mdn=device.mdn or "",
                msisdn=device.msisdn or "",
                extended_attributes=tuple(extra.items()),
            )
        )
        keep = self.options.max_history
        if keep is not None and len(history) > keep:
            del history[: len(history) - keep]

    def _action(self, request: AsyncRequest, result: DeviceResult, now: float) -> Outcome:
        action = request.action
        params = request.params
        device = self.inventory.resolve(result.selector, request.account)
        if device is None and action == "activate":
            fault = new_device_fault(
                self.inventory, result.selector, strict_spares=self.options.strict_spares
            )
            if fault is not None:
                return Outcome(result.selector, fault=fault)
            account = self.inventory.accounts[request.account]
            hardware = {k: v for k, v in result.selector if k in _HARDWARE_KINDS}
            device = self.inventory.create(
                account, hardware, state="preactive", plan=params["servicePlan"], created_at=now
            )
        if device is None:
            return Outcome(result.selector, fault=NOT_FOUND)
        before = device_ids(device)
        limits = self.options.limits
        plan = params.get("servicePlan")
        current = params.get("currentServicePlan")
        fault = action_fault(action, device, now, limits, plan=plan, current_plan=current)
        if fault is not None:
            return Outcome(before, device, fault)
        apply_action(action, self.inventory, device, now, self.rng, plan=plan)
        restore_at = None
        if action == "suspend" and limits.suspend_auto_restore is not None:
            restore_at = now + limits.suspend_auto_restore
        response = {
            _RESPONSE_KEYS[action]: {
                "deviceIds": ids_json(device_ids(device)),
                "state": device.state,
                "servicePlan": device.plan,
            }
        }
        return Outcome(before, device, response=response, restore_at=restore_at)

    def _change(self, request: AsyncRequest, result: DeviceResult) -> Outcome:
        params = request.params
        device = self.inventory.resolve(result.selector, params.get("accountName"))
        if device is None:
            return Outcome(result.selector, fault=NOT_FOUND)
        before = device_ids(device)
        extra = {"Change4GOption": params["option"]}
        new_ids: DeviceIdList = params["deviceIdsTo"]
        fault = change_device_fault(device) or new_ids_fault(
            self.inventory, new_ids, strict_spares=self.options.strict_spares
        )
        plan = params.get("servicePlan")
        plans = self.inventory.accounts[device.account].plans  # accounts are never removed
        if fault is None and plan is not None and plan not in plans:
            fault = Codes.SERVICE_PLAN_INVALID, f"Unknown service plan {plan!r}"
        if fault is not None:
            return Outcome(before, device, fault, extra=extra)
        old = dict(before)
        changed = apply_change(
            self.inventory,
            device,
            params["option"],
            new_ids,
            self.rng,
            npa_nxx=params.get("npaNxx"),
        )
        for kind, value in old.items():
            if device.identifiers.get(kind) != value:
                self.former[(kind, value)] = device
        if plan is not None:
            device.plan = plan
        for kind, value in changed:
            if kind in old:
                extra[f"Old{kind.upper()}"] = old[kind]
            extra[f"New{kind.upper()}"] = value
        response = {
            "changeIdentifierResponse": {"deviceIds": ids_json(changed), "servicePlan": device.plan}
        }
        return Outcome(before, device, response=response, extra=extra)
