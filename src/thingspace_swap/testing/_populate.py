"""Realistic, seed-determined inventories: plans, devices in every state, and spare hardware."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from ._identifiers import (
    random_iccid,
    random_imei,
    random_imsi,
    random_ip_address,
    random_mdn,
)
from ._inventory import Account, Device, HistoryEntry, Inventory, Plan

__all__ = ["DEFAULT_PLANS", "Population", "populate"]

#: Plans ``populate`` adds to an account that has none of them.
DEFAULT_PLANS = (
    Plan("M2M 4G 5MB Shared", "M2M5MBSHR", 5_120, "84777"),
    Plan("IoT 1GB Shared", "IOT1GBSHR", 1_048_576, "96812"),
)

_GROUPS = ("southwest", "northeast", "midwest", "fleet-a", "fleet-b")
#: Device states and how many in a hundred devices are in each.
_STATE_NAMES = ("active", "suspend", "deactive", "preactive")
_STATE_WEIGHTS = (85, 6, 5, 4)


@dataclass(frozen=True)
class Population:
    """What [ThingSpaceSimulator.populate][thingspace_swap.testing.ThingSpaceSimulator.populate]
    created."""

    account: str
    devices: list[Device]
    plans: list[Plan]
    #: Valid ICCIDs known to Verizon but in no account: targets for ChangeICCID.
    spare_iccids: list[str]
    #: Valid IMEIs in no account: targets for ChangeIMEI.
    spare_imeis: list[str]


def _unique(inventory: Inventory, make: Callable[[], str]) -> str:
    while True:
        value = make()
        if inventory.is_free_value(value):
            return value


def populate(
    inventory: Inventory,
    account: Account,
    n_devices: int,
    rng: random.Random,
    *,
    now: float,
    event_by: str,
    n_spare_sims: int,
    n_spare_imeis: int,
) -> Population:
    """Fill ``account`` with ``n_devices`` devices drawn from ``rng``.

    ``now`` is the current time and ``event_by`` the user named by their activations.
    """
    for plan in DEFAULT_PLANS:
        account.plans.setdefault(plan.code, plan)
    plans = list(account.plans.values())
    devices = [_device(inventory, account, plans, rng, now, event_by) for _ in range(n_devices)]
    spare_iccids = [_add_spare(inventory, account, "iccid", rng) for _ in range(n_spare_sims)]
    spare_imeis = [_add_spare(inventory, account, "imei", rng) for _ in range(n_spare_imeis)]
    return Population(account.name, devices, plans, spare_iccids, spare_imeis)


def _device(
    inventory: Inventory,
    account: Account,
    plans: list[Plan],
    rng: random.Random,
    now: float,
    event_by: str,
) -> Device:
    """One device in a random state, created 30 to 900 days ago."""
    state = rng.choices(_STATE_NAMES, _STATE_WEIGHTS)[0]
    ids = {
        "iccid": _unique(inventory, lambda: random_iccid(rng)),
        "imei": _unique(inventory, lambda: random_imei(rng)),
    }
    if state in ("active", "suspend"):
        mdn = _unique(inventory, lambda: random_mdn(rng))
        ids.update(mdn=mdn, msisdn="1" + mdn, imsi=_unique(inventory, lambda: random_imsi(rng)))
    plan = rng.choice(plans)
    created = now - rng.uniform(30, 900) * 86400
    device = inventory.create(
        account,
        ids,
        state=state,
        plan=plan.code,
        created_at=round(created),
        id_step=rng.randint(1, 7),
    )
    device.groups = [rng.choice(_GROUPS)] if rng.random() < 0.7 else []
    device.custom_fields = {"CustomField1": f"CF{rng.randrange(1000)}"}
    if state != "preactive":
        activated = round(created + rng.uniform(0, 5) * 86400)
        device.last_activation_at = activated
        mdn, msisdn = ids.get("mdn", ""), ids.get("msisdn", "")
        entry = HistoryEntry(activated, "Activate", "Success", event_by, plan.code, mdn, msisdn)
        device.history.append(entry)
    if state == "active":
        device.connected = rng.random() < 0.6
        device.ip_address = random_ip_address(rng)
    if state == "suspend":
        device.suspended_at = now
    return device


def _add_spare(inventory: Inventory, account: Account, kind: str, rng: random.Random) -> str:
    make = random_iccid if kind == "iccid" else random_imei
    value = _unique(inventory, lambda: make(rng))
    inventory.spares[(kind, value)] = account.name
    return value
