"""Accounts, plans, devices and the identifier index: the simulator's database."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from ._identifiers import KINDS

__all__ = [
    "DEVICE_STATES",
    "NO_IP_ADDRESS",
    "Account",
    "CallbackRegistration",
    "Device",
    "HistoryEntry",
    "Inventory",
    "Plan",
]

#: Device states as ThingSpace spells them in ``carrierInformations[].state``.
DEVICE_STATES = (
    "active",
    "suspend",
    "deactive",
    "preactive",
    "pending activation",
    "pending deactivation",
)

#: The ``ipAddress`` of a device without a data session (not a socket binding).
NO_IP_ADDRESS = "0.0.0.0"  # noqa: S104


@dataclass(frozen=True)
class Plan:
    """A service plan of an account."""

    name: str
    code: str
    size_kb: int = 5120
    carrier_service_plan_code: str = ""


@dataclass(frozen=True)
class CallbackRegistration:
    """A callback listener registered for one service name of one account."""

    account: str
    service_name: str
    url: str
    username: str = ""
    password: str = ""


@dataclass(frozen=True)
class HistoryEntry:
    """One provisioning-history event of a device."""

    occurred_at: float
    event_type: str
    status: str
    event_by: str
    service_plan: str
    mdn: str = ""
    msisdn: str = ""
    extended_attributes: tuple[tuple[str, str], ...] = ()


@dataclass(eq=False)
class Device:
    """A line in the ThingSpace database. The simulator mutates it in place.

    ``identifiers`` maps lower-case kinds (``iccid``, ``imei``, ``mdn``...) to values.
    ``device_id`` is the numeric ``DeviceId`` extended attribute used as the paging cursor.
    """

    device_id: int
    account: str
    identifiers: dict[str, str]
    state: str
    plan: str
    created_at: float
    groups: list[str] = field(default_factory=list)
    custom_fields: dict[str, str] = field(default_factory=dict)
    last_activation_at: float | None = None
    connected: bool = False
    ip_address: str = NO_IP_ADDRESS
    history: list[HistoryEntry] = field(default_factory=list)
    provisioning_actions: list[float] = field(default_factory=list)
    plan_changes: list[float] = field(default_factory=list)
    suspended_at: float | None = None
    deleted: bool = False

    @property
    def iccid(self) -> str | None:
        """The current ICCID, if any."""
        return self.identifiers.get("iccid")

    @property
    def imei(self) -> str | None:
        """The current IMEI, if any."""
        return self.identifiers.get("imei")

    @property
    def mdn(self) -> str | None:
        """The current MDN, if any."""
        return self.identifiers.get("mdn")

    @property
    def msisdn(self) -> str | None:
        """The current MSISDN, if any."""
        return self.identifiers.get("msisdn")

    @property
    def imsi(self) -> str | None:
        """The current IMSI, if any."""
        return self.identifiers.get("imsi")

    @property
    def eid(self) -> str | None:
        """The current EID, if any."""
        return self.identifiers.get("eid")


@dataclass(eq=False)
class Account:
    """A billing account: its plans, callback registrations and request-rate bookkeeping."""

    name: str
    organization_name: str = "Simulated Organization"
    billing_cycle_day: int = 9
    plans: dict[str, Plan] = field(default_factory=dict)
    callbacks: dict[str, CallbackRegistration] = field(default_factory=dict)
    activate_requests: list[float] = field(default_factory=list)
    features: list[str] = field(default_factory=lambda: ["M2M", "IoT Device Management"])
    ip_pools: list[dict[str, object]] = field(
        default_factory=lambda: [
            {"name": "VZWINTERNET", "poolType": "Dynamic", "isDefaultPool": True},
        ]
    )


class Inventory:
    """All accounts and devices, indexed by every identifier (kind, value)."""

    def __init__(self) -> None:
        self.accounts: dict[str, Account] = {}
        self._devices: dict[int, Device] = {}
        self._index: dict[tuple[str, str], Device] = {}
        #: Identifiers known to Verizon but in no account: (kind, value) -> account name.
        self.spares: dict[tuple[str, str], str] = {}
        self.next_device_id = 1000

    # Devices -------------------------------------------------------------------------------

    def devices(self) -> Iterator[Device]:
        """Every device, in ascending ``device_id`` order."""
        return iter(list(self._devices.values()))

    def devices_after(self, cursor: int) -> Iterator[Device]:
        """The devices whose ``device_id`` is above ``cursor``, in ascending order (found by
        bisection: a listing's page costs its own size, not the inventory's)."""
        everything = list(self._devices.values())
        start = bisect.bisect_right(everything, cursor, key=lambda device: device.device_id)
        return itertools.islice(everything, start, None)

    def __len__(self) -> int:
        return len(self._devices)

    def add(self, device: Device) -> Device:
        """Insert ``device`` (its identifiers must be free, its id larger than any before)."""
        for kind, value in device.identifiers.items():
            if (kind, value) in self._index:
                raise ValueError(f"{kind} {value} already belongs to a device")
        if device.device_id < self.next_device_id:
            raise ValueError("device ids must increase")
        self._devices[device.device_id] = device
        for kind, value in device.identifiers.items():
            self._index[(kind, value)] = device
            self.spares.pop((kind, value), None)
        self.next_device_id = max(self.next_device_id, device.device_id + 1)
        return device

    def create(
        self,
        account: Account,
        identifiers: dict[str, str],
        *,
        state: str,
        plan: str,
        created_at: float,
        id_step: int = 1,
    ) -> Device:
        """Insert a new device with the next ``DeviceId`` (``id_step`` - 1 ids skipped)."""
        if state not in DEVICE_STATES:
            raise ValueError(f"unknown device state {state!r}; use one of {DEVICE_STATES}")
        if plan not in account.plans:
            raise ValueError(f"account {account.name} has no plan {plan!r}")
        for kind in identifiers:
            if kind not in KINDS:
                raise ValueError(f"unknown identifier kind {kind!r}")
        device = Device(
            device_id=self.next_device_id + max(0, id_step - 1),
            account=account.name,
            identifiers=dict(identifiers),
            state=state,
            plan=plan,
            created_at=created_at,
        )
        return self.add(device)

    def remove(self, device: Device) -> None:
        """Delete ``device``: its identifiers become free again."""
        self._devices.pop(device.device_id, None)
        for kind, value in device.identifiers.items():
            if self._index.get((kind, value)) is device:
                del self._index[(kind, value)]
        device.deleted = True

    def set_identifier(self, device: Device, kind: str, value: str | None) -> None:
        """Give ``device`` a new ``kind`` identifier (None removes it), keeping the index right."""
        old = device.identifiers.pop(kind, None)
        if old is not None and self._index.get((kind, old)) is device:
            del self._index[(kind, old)]
        if value is not None:
            if self._index.get((kind, value), device) is not device:
                raise ValueError(f"{kind} {value} already belongs to a device")
            device.identifiers[kind] = value
            self._index[(kind, value)] = device
            self.spares.pop((kind, value), None)

    def find(self, kind: str, value: str) -> Device | None:
        """The device that has identifier ``value`` of ``kind`` (lower-case), if any."""
        return self._index.get((kind, value))

    def resolve(
        self, selector: Iterable[tuple[str, str]], account: str | None = None
    ) -> Device | None:
        """The device every ``(kind, value)`` of ``selector`` names, inside ``account`` if
        given."""
        found: Device | None = None
        for kind, value in selector:
            device = self.find(kind, value)
            if device is None or (found is not None and device is not found):
                return None
            found = device
        if found is not None and account is not None and found.account != account:
            return None
        return found

    def find_any(self, value: str) -> Device | None:
        """The device that has ``value`` as an identifier of any kind, if any."""
        for kind in KINDS:
            device = self._index.get((kind, value))
            if device is not None:
                return device
        return None

    def is_taken(self, kind: str, value: str) -> bool:
        """True when some device in the database already has this identifier."""
        return (kind, value) in self._index

    def is_free_value(self, value: str) -> bool:
        """True when ``value`` is neither a device identifier nor a registered spare."""
        return self.find_any(value) is None and all((k, value) not in self.spares for k in KINDS)
