"""ThingSpace's business rules: what each action requires of a device, and what it changes.

Every check returns a ``Fault`` (code, message) or None; every effect mutates the inventory.
Nothing here knows about HTTP, sessions or time beyond the ``now`` it is given.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from types import MappingProxyType

from ._callbacks import LISTENER_PORTS
from ._errors import Codes
from ._identifiers import identifier_problem, random_imsi, random_ip_address, random_mdn
from ._inventory import NO_IP_ADDRESS, Device, Inventory

__all__ = [
    "CHANGE_OPTIONS",
    "NOT_FOUND",
    "PROVISIONING_ACTIONS",
    "ChangeOption",
    "Fault",
    "SimulatorLimits",
    "action_fault",
    "apply_action",
    "apply_change",
    "change_device_fault",
    "new_device_fault",
    "new_ids_fault",
]

Fault = tuple[str, str]

#: The fault of a request that names no device (or a device of another account).
NOT_FOUND: Fault = (Codes.DEVICE_NOT_FOUND, "The device was not found")

#: Actions that count toward the per-line daily provisioning limit.
PROVISIONING_ACTIONS = ("activate", "suspend", "restore", "deactivate")


@dataclass(frozen=True)
class SimulatorLimits:
    """The quotas and timeouts the simulator enforces."""

    token_lifetime: float = 3600.0
    session_idle_timeout: float = 1200.0
    max_failed_logins: int = 5
    default_page_size: int = 100
    max_page_size: int = 500
    history_page_size: int = 500
    provisioning_actions_per_day: int = 5
    plan_changes_per_month: int = 4
    activate_requests_per_minute: int = 100
    max_devices_per_request: int = 10_000
    #: Listener ports a callback URL may use; None allows any (loopback tests).
    callback_ports: frozenset[int] | None = LISTENER_PORTS
    #: Seconds after which a suspended line is restored automatically (None: never).
    suspend_auto_restore: float | None = 90 * 86400.0


@dataclass(frozen=True)
class ChangeOption:
    """What one ``change4gOption`` needs in ``deviceIdsTo``."""

    required: frozenset[str]
    allowed: frozenset[str]
    #: Kinds the change removes from the device when not replaced.
    drops: frozenset[str] = frozenset()
    needs_smsr_oid: bool = False


def _kinds(*kinds: str) -> frozenset[str]:
    return frozenset(kinds)


#: The ``change4gOption`` values, spelled exactly.
CHANGE_OPTIONS: Mapping[str, ChangeOption] = MappingProxyType(
    {
        "ChangeICCID": ChangeOption(_kinds("iccid"), _kinds("iccid")),
        "ChangeIMEI": ChangeOption(_kinds("imei"), _kinds("imei")),
        "ChangeIMEIandICCID": ChangeOption(_kinds("imei", "iccid"), _kinds("imei", "iccid")),
        "ChangeMSISDN": ChangeOption(frozenset(), frozenset()),
        "3Gto4G": ChangeOption(
            frozenset(), _kinds("imei", "iccid", "eid"), drops=_kinds("meid", "esn", "min")
        ),
        "4Gto3G": ChangeOption(
            frozenset(), _kinds("meid", "esn", "iccid"), drops=_kinds("imei", "eid")
        ),
        "ChangeIMEIandEID": ChangeOption(
            _kinds("imei", "eid"), _kinds("imei", "eid"), needs_smsr_oid=True
        ),
    }
)


def _day(ts: float) -> int:
    return int(ts // 86400)


def _month(ts: float) -> tuple[int, int]:
    moment = datetime.fromtimestamp(ts, tz=timezone.utc)
    return moment.year, moment.month


# Checks --------------------------------------------------------------------------------------


def action_fault(
    action: str,
    device: Device,
    now: float,
    limits: SimulatorLimits,
    *,
    plan: str | None = None,
    current_plan: str | None = None,
) -> Fault | None:
    """Why ``action`` cannot be applied to ``device`` now (None when it can)."""
    state = device.state
    if action in PROVISIONING_ACTIONS:
        today = _day(now)
        done = sum(1 for ts in device.provisioning_actions if _day(ts) == today)
        if done >= limits.provisioning_actions_per_day:
            return (
                Codes.PROVISIONING_LIMIT,
                f"The line already had {done} provisioning actions today.",
            )
    if action == "activate":
        if state == "active":
            return Codes.DEVICE_ALREADY_ACTIVE, "Device is already active"
        if state not in ("preactive", "deactive"):
            return Codes.DEVICE_STATE_INVALID, f"A device in state {state!r} cannot be activated"
    elif action == "suspend":
        if state != "active":
            return Codes.DEVICE_STATE_INVALID, f"A device in state {state!r} cannot be suspended"
    elif action == "restore":
        if state != "suspend":
            return Codes.DEVICE_STATE_INVALID, f"A device in state {state!r} cannot be restored"
    elif action == "deactivate":
        if state not in ("active", "suspend"):
            return (
                Codes.DEVICE_STATE_INVALID,
                f"A device in state {state!r} cannot be deactivated",
            )
    elif action == "plan":
        if state == "suspend":
            return Codes.DEVICE_STATE_INVALID, "The service plan of a suspended line cannot change"
        if state not in ("active", "preactive"):
            return Codes.DEVICE_STATE_INVALID, f"A device in state {state!r} cannot change plan"
        if current_plan is not None and current_plan != device.plan:
            return Codes.SERVICE_PLAN_INVALID, f"The device is not on plan {current_plan!r}"
        month = _month(now)
        done = sum(1 for ts in device.plan_changes if _month(ts) == month)
        if plan != device.plan and done >= limits.plan_changes_per_month:
            return Codes.PLAN_CHANGE_LIMIT, f"The line already changed plan {done} times this month"
    return None


def change_device_fault(device: Device) -> Fault | None:
    """The device precondition of a change of identifier: Active with an MDN."""
    if device.state != "active":
        return (
            Codes.DEVICE_STATE_INVALID,
            f"The device must be active to change an identifier (it is {device.state!r})",
        )
    if not device.mdn and not device.msisdn:
        return Codes.DEVICE_STATE_INVALID, "The device has no MDN or MSISDN"
    return None


def new_ids_fault(
    inventory: Inventory, new_ids: list[tuple[str, str]], *, strict_spares: bool
) -> Fault | None:
    """Why the new identifiers cannot be used (already in the database, unknown SIM...)."""
    for kind, value in new_ids:
        problem = identifier_problem(kind, value)
        if problem is not None:
            return Codes.IDENTIFIER_INVALID, f"{kind} {value}: {problem}"
        if inventory.is_taken(kind, value):
            return (
                Codes.DEVICE_ALREADY_EXISTS,
                f"{kind} {value} already exists in the ThingSpace database",
            )
        if strict_spares and kind in ("iccid", "imei") and (kind, value) not in inventory.spares:
            return Codes.SIM_NOT_FOUND, f"{kind} {value} is not known to Verizon"
    return None


def new_device_fault(
    inventory: Inventory, selector: list[tuple[str, str]], *, strict_spares: bool
) -> Fault | None:
    """Why ``activate`` cannot create a device from ``selector``: it needs an ICCID with an
    IMEI or an EID, all new."""
    kinds = {kind for kind, _ in selector}
    if not {"iccid", "imei"} <= kinds and not {"iccid", "eid"} <= kinds:
        return NOT_FOUND
    return new_ids_fault(inventory, selector, strict_spares=strict_spares)


# Effects -------------------------------------------------------------------------------------


def _new_mdn(inventory: Inventory, rng: random.Random, npa_nxx: str | None = None) -> str:
    while True:
        mdn = random_mdn(rng, npa_nxx)
        if not inventory.is_taken("mdn", mdn) and not inventory.is_taken("msisdn", "1" + mdn):
            return mdn


def _new_imsi(inventory: Inventory, rng: random.Random) -> str:
    while True:
        imsi = random_imsi(rng)
        if not inventory.is_taken("imsi", imsi):
            return imsi


def assign_number(
    inventory: Inventory, device: Device, rng: random.Random, npa_nxx: str | None = None
) -> None:
    """Give ``device`` a new MDN and the matching US MSISDN."""
    mdn = _new_mdn(inventory, rng, npa_nxx)
    inventory.set_identifier(device, "mdn", mdn)
    inventory.set_identifier(device, "msisdn", "1" + mdn)


def apply_action(
    action: str,
    inventory: Inventory,
    device: Device,
    now: float,
    rng: random.Random,
    *,
    plan: str | None = None,
) -> None:
    """Apply a checked ``activate``/``suspend``/``restore``/``deactivate``/``plan`` action."""
    if action in PROVISIONING_ACTIONS:
        device.provisioning_actions.append(now)
    if action == "activate":
        device.state = "active"
        if plan is not None:
            device.plan = plan
        if not device.mdn:
            assign_number(inventory, device, rng)
        if not device.imsi:
            inventory.set_identifier(device, "imsi", _new_imsi(inventory, rng))
        device.last_activation_at = now
        device.ip_address = random_ip_address(rng)
    elif action == "suspend":
        device.state = "suspend"
        device.suspended_at = now
    elif action == "restore":
        device.state = "active"
        device.suspended_at = None
    elif action == "deactivate":
        device.state = "deactive"
        device.suspended_at = None
        device.connected = False
        device.ip_address = NO_IP_ADDRESS
        inventory.set_identifier(device, "mdn", None)
        inventory.set_identifier(device, "msisdn", None)
    elif action == "plan" and plan is not None and plan != device.plan:
        device.plan = plan
        device.plan_changes.append(now)


def apply_change(
    inventory: Inventory,
    device: Device,
    option: str,
    new_ids: list[tuple[str, str]],
    rng: random.Random,
    *,
    npa_nxx: str | None = None,
) -> list[tuple[str, str]]:
    """Apply a checked change of identifier; returns the identifiers that are new."""
    before = dict(device.identifiers)
    spec = CHANGE_OPTIONS[option]
    if option == "ChangeMSISDN":
        assign_number(inventory, device, rng, npa_nxx)
    else:
        given = {kind for kind, _ in new_ids}
        for kind in spec.drops - given:
            inventory.set_identifier(device, kind, None)
        for kind, value in new_ids:
            inventory.set_identifier(device, kind, value)
        if "iccid" in given and device.imsi:
            # A new SIM carries a new IMSI.
            inventory.set_identifier(device, "imsi", _new_imsi(inventory, rng))
    return [
        (kind, value) for kind, value in device.identifiers.items() if before.get(kind) != value
    ]
