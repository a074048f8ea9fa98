"""The inventory as tests see it: accounts, plans, devices and spares added, lines looked up.

The methods of ``ThingSpaceSimulator`` with the same names delegate here (their docstrings are
the documented ones).
"""

from __future__ import annotations

import random
import threading

from ._identifiers import identifier_problem
from ._inventory import Account, Device, Plan
from ._populate import Population, populate
from ._sim_core import SimulatorCore

__all__ = ["InventoryDesk", "identifiers"]


class InventoryDesk:
    """Adds to and reads the core's inventory, under the simulator's lock."""

    def __init__(self, core: SimulatorCore, lock: threading.RLock) -> None:
        self._core = core
        self._lock = lock

    def _account(self, account: str | Account) -> Account:
        name = account.name if isinstance(account, Account) else account
        try:
            return self._core.inventory.accounts[name]
        except KeyError:
            raise KeyError(f"no account {name!r}; call add_account first") from None

    def add_account(self, name: str, *, organization_name: str) -> Account:
        """A new billing account (ValueError when ``name`` exists)."""
        with self._lock:
            accounts = self._core.inventory.accounts
            if name in accounts:
                raise ValueError(f"account {name!r} already exists")
            account = Account(
                name,
                organization_name=organization_name,
                billing_cycle_day=self._core.rng.randint(1, 28),
            )
            accounts[name] = account
            return account

    def account(self, account: str | Account) -> Account:
        """The account (KeyError when unknown)."""
        with self._lock:
            return self._account(account)

    def add_plan(self, account: str | Account, plan: Plan) -> Plan:
        """Add ``plan`` to ``account``."""
        with self._lock:
            self._account(account).plans[plan.code] = plan
            return plan

    def add_device(
        self,
        account: str | Account,
        ids: dict[str, str],
        *,
        state: str,
        plan: str | None,
        group: str | None,
        custom_fields: dict[str, str] | None,
        validate: bool,
    ) -> Device:
        """A new device with identifiers ``ids`` (see ``ThingSpaceSimulator.add_device``)."""
        with self._lock:
            acct = self._account(account)
            if plan is None:
                if not acct.plans:
                    acct.plans["M2M4G"] = Plan("M2M 4G", "M2M4G", 5120, "84777")
                plan = next(iter(acct.plans))
            if validate:
                _check_identifiers(ids)
            core = self._core
            device = core.inventory.create(acct, ids, state=state, plan=plan, created_at=core.now())
            device.groups = [group] if group else []
            device.custom_fields = dict(custom_fields or {})
            if state in ("active", "suspend"):
                device.last_activation_at = device.created_at
            return device

    def add_spare(self, account: str | Account, kind: str, value: str) -> None:
        """Register a ``kind`` identifier no device has as a spare of ``account``."""
        with self._lock:
            acct = self._account(account)
            _check_identifiers({kind: value})
            inventory = self._core.inventory
            if inventory.is_taken(kind, value):
                raise ValueError(f"{kind} {value} already belongs to a device")
            inventory.spares[(kind, value)] = acct.name

    def spares(self) -> dict[tuple[str, str], str]:
        """Unused spare identifiers: ``(kind, value) -> account name``."""
        with self._lock:
            return dict(self._core.inventory.spares)

    def populate(
        self,
        account: str,
        n_devices: int,
        *,
        seed: int | None,
        n_spare_sims: int | None,
        n_spare_imeis: int | None,
    ) -> Population:
        """Fill the existing ``account`` (see ``ThingSpaceSimulator.populate``)."""
        with self._lock:
            core = self._core
            rng = random.Random(seed) if seed is not None else core.rng
            spares = max(4, n_devices // 10)
            return populate(
                core.inventory,
                self._account(account),
                n_devices,
                rng,
                now=core.now(),
                event_by=core.auth.credentials.username,
                n_spare_sims=spares if n_spare_sims is None else n_spare_sims,
                n_spare_imeis=spares if n_spare_imeis is None else n_spare_imeis,
            )

    def has_account(self, name: str) -> bool:
        """True when an account is called ``name``."""
        with self._lock:
            return name in self._core.inventory.accounts

    def find_device(self, identifier: str, kind: str | None) -> Device | None:
        """The device that has ``identifier`` now (of ``kind``, if given), or None."""
        with self._lock:
            inventory = self._core.inventory
            if kind is not None:
                return inventory.find(kind.lower(), identifier)
            return inventory.find_any(identifier)

    def device(self, identifier: str, kind: str | None) -> Device:
        """Like ``find_device``, but raises KeyError when no device has ``identifier``."""
        device = self.find_device(identifier, kind)
        if device is None:
            raise KeyError(f"no device has identifier {identifier!r}")
        return device

    def devices(self, account: str | Account | None) -> list[Device]:
        """All devices (of ``account``, if given) in ``DeviceId`` order."""
        with self._lock:
            name = None if account is None else self._account(account).name
            devices = self._core.inventory.devices()
            return [d for d in devices if name is None or d.account == name]

    def submissions(self, line: int | str | Device) -> int:
        """Change-identifier submissions for one line (see ``ThingSpaceSimulator``)."""
        with self._lock:
            if isinstance(line, Device):
                key = line.device_id
            elif isinstance(line, int):
                key = line
            else:
                key = self.device(line, None).device_id
            return self._core.submissions[key]

    def submission_counts(self) -> dict[int, int]:
        """Change-identifier submissions per line (lines with any)."""
        with self._lock:
            return dict(sorted(self._core.submissions.items()))


def identifiers(
    *,
    iccid: str,
    imei: str,
    mdn: str | None,
    msisdn: str | None,
    imsi: str | None,
    eid: str | None,
) -> dict[str, str]:
    """The identifiers ``add_device`` was given; ``msisdn`` defaults to ``"1" + mdn``."""
    ids = {"iccid": iccid, "imei": imei}
    if mdn is not None:
        ids["mdn"] = mdn
        ids["msisdn"] = msisdn if msisdn is not None else "1" + mdn
    elif msisdn is not None:
        ids["msisdn"] = msisdn
    if imsi is not None:
        ids["imsi"] = imsi
    if eid is not None:
        ids["eid"] = eid
    return ids


def _check_identifiers(ids: dict[str, str]) -> None:
    for kind, value in ids.items():
        problem = identifier_problem(kind, value)
        if problem is not None:
            raise ValueError(f"invalid {kind} {value!r}: {problem}")
