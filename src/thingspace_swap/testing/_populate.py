"""Realistic, seed-determined inventories: plans, devices in every state, and spare hardware."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from ._identifiers import random_iccid, random_imei, random_imsi, random_mdn
from ._inventory import Account, Device, HistoryEntry, Plan
from ._sim_core import SimulatorCore

__all__ = ["DEFAULT_PLANS", "Population", "populate"]

#: Plans ``populate`` adds to an account that has none of them.
DEFAULT_PLANS = (
    Plan("M2M 4G 5MB Shared", "M2M5MBSHR", 5_120, "84777"),
    Plan("IoT 1GB Shared", "IOT1GBSHR", 1_048_576, "96812"),
)

_GROUPS = ("southwest", "northeast", "midwest", "fleet-a", "fleet-b")
_STATES = (("active", 85), ("suspend", 6), ("deactive", 5), ("preactive", 4))


@dataclass(frozen=True)
class Population:
    """What :meth:`ThingSpaceSimulator.populate` created."""

    account: str
    devices: list[Device]
    plans: list[Plan]
    #: Valid ICCIDs known to Verizon but in no account: targets for ChangeICCID.
    spare_iccids: list[str]
    #: Valid IMEIs in no account: targets for ChangeIMEI.
    spare_imeis: list[str]


def _unique(engine: SimulatorCore, make: Callable[[], str]) -> str:
    while True:
        value = make()
        if engine.inventory.is_free_value(value):
            return value


def populate(
    engine: SimulatorCore,
    account: Account,
    n_devices: int,
    rng: random.Random,
    *,
    n_spare_sims: int,
    n_spare_imeis: int,
) -> Population:
    """Fill ``account`` with ``n_devices`` devices drawn from ``rng``."""
    for plan in DEFAULT_PLANS:
        account.plans.setdefault(plan.code, plan)
    plans = list(account.plans.values())
    now = engine.now()
    states = [state for state, _ in _STATES]
    weights = [weight for _, weight in _STATES]
    devices = []
    for _ in range(n_devices):
        state = rng.choices(states, weights)[0]
        ids = {
            "iccid": _unique(engine, lambda: random_iccid(rng)),
            "imei": _unique(engine, lambda: random_imei(rng)),
        }
        if state in ("active", "suspend"):
            mdn = _unique(engine, lambda: random_mdn(rng))
            ids.update(mdn=mdn, msisdn="1" + mdn, imsi=_unique(engine, lambda: random_imsi(rng)))
        plan = rng.choice(plans)
        created = now - rng.uniform(30, 900) * 86400
        device = engine.create_device(
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
            device.history.append(
                HistoryEntry(
                    activated,
                    "Activate",
                    "Success",
                    engine.auth.credentials.username,
                    plan.code,
                    ids.get("mdn", ""),
                    ids.get("msisdn", ""),
                )
            )
        if state == "active":
            device.connected = rng.random() < 0.6
            device.ip_address = (
                f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
            )
        if state == "suspend":
            device.suspended_at = now
        devices.append(device)
    spare_iccids = [_add_spare(engine, account, "iccid", rng) for _ in range(n_spare_sims)]
    spare_imeis = [_add_spare(engine, account, "imei", rng) for _ in range(n_spare_imeis)]
    return Population(account.name, devices, plans, spare_iccids, spare_imeis)


def _add_spare(engine: SimulatorCore, account: Account, kind: str, rng: random.Random) -> str:
    make = random_iccid if kind == "iccid" else random_imei
    value = _unique(engine, lambda: make(rng))
    engine.inventory.spares[(kind, value)] = account.name
    return value
