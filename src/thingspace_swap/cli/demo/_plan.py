"""The demo's request: the simulator's inventory, the devices to swap (a few designed to fail),
the faults of ``--faults`` and what happens on ThingSpace meanwhile."""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from ...clock import Clock
from ...models import DeviceId
from ...swap import LifecycleSettings, Phase, SwapItem
from ...testing import Faults, ThingSpaceSimulator
from ..errors import CliError

if TYPE_CHECKING:
    from ...testing import Device

__all__ = ["DemoOptions", "Planned", "disrupt", "faults_preset", "plan_request", "settings"]

ACCOUNT = "0000123456-00001"
OTHER_ACCOUNT = "0000765432-00001"
SIMULATOR_URL = "https://simulator.thingspace.test"
LISTENER_URL = "https://swap-listener.example.com:9001/thingspace/callbacks"
SWAP_ROUTE = "PUT /api/m2m/v1/devices/{serviceType}/actions/deviceId"
PLAN_ROUTE = "PUT /api/m2m/v1/devices/actions/plan"
#: Faults hit these routes; token, login and callback registration are left alone.
FAULT_SCOPE = frozenset(
    {
        SWAP_ROUTE,
        PLAN_ROUTE,
        "POST /api/m2m/v1/devices/actions/list",
        "POST /api/m2m/v1/devices/history/actions/list",
        "GET /api/m2m/v1/plans/{accountName}",
    }
)
FAULT_LEVELS = ("none", "light", "heavy")
MIN_DEVICES = 10

# Why each device is in the request, and where it should end.
SWAP = "swap"
BAD_CHECK_DIGIT = "bad check digit"
UNKNOWN_DEVICE = "unknown device"
ICCID_IN_USE = "new ICCID already in use"
SUSPENDED = "suspended after validation"
TAKEN = "ICCID taken after validation"
UNKNOWN_OUTCOME = "outcome unknown (5xx, lost response)"
EXPECTED = MappingProxyType(
    {
        SWAP: Phase.COMPLETED,
        BAD_CHECK_DIGIT: Phase.REJECTED,
        UNKNOWN_DEVICE: Phase.REJECTED,
        ICCID_IN_USE: Phase.REJECTED,
        SUSPENDED: Phase.FAILED,
        TAKEN: Phase.FAILED,
    }
)


@dataclass(frozen=True)
class DemoOptions:
    """The demo's command-line options."""

    devices: int = 300
    seed: int = 2026
    faults: str = "light"
    over_http: bool = False
    data: Path | None = None
    json: bool = False


@dataclass(frozen=True)
class Planned:
    """One device of the demo's request, and why it is there."""

    item: SwapItem
    design: str
    line: str | None
    kind: str


def faults_preset(level: str, *, over_http: bool) -> Faults | None:
    """The faults of ``--faults``: none, light or heavy (no real sleeps over HTTP)."""
    if level == "none":
        return None
    virtual = not over_http
    if level == "light":
        return Faults(
            throttle_rate=0.03,
            retry_after=1.0 if virtual else None,
            latency=0.2 if virtual else 0.0,
            latency_jitter=0.3 if virtual else 0.0,
            drop_callback_rate=0.05,
            duplicate_callback_rate=0.1,
            reorder_callbacks=True,
            lost_response_rate=0.02,
            only=FAULT_SCOPE,
        )
    if level == "heavy":
        return Faults(
            throttle_rate=0.2,
            retry_after=1.0 if virtual else None,
            server_error_rate=0.05,
            latency=0.5 if virtual else 0.0,
            latency_jitter=1.0 if virtual else 0.0,
            expire_token_every=53,
            expire_session_every=31,
            drop_callback_rate=0.25,
            duplicate_callback_rate=0.25,
            reorder_callbacks=True,
            callbacks_before_response=True,
            lost_response_rate=0.08,
            only=FAULT_SCOPE,
        )
    raise CliError(f"--faults must be one of {', '.join(FAULT_LEVELS)}", 2)


def settings(over_http: bool) -> LifecycleSettings:
    """The lifecycle's timings: virtual time takes ThingSpace's, real time short ones."""
    if over_http:  # real time: short deadlines keep the run to seconds
        return LifecycleSettings(
            lease=5.0,
            callback_timeout=1.0,
            settle_interval=0.3,
            settle_timeout=3.0,
            pending_timeout=30.0,
            retry_initial=0.2,
            retry_max=1.0,
        )
    return LifecycleSettings(
        lease=60.0,
        callback_timeout=120.0,
        settle_interval=30.0,
        settle_timeout=600.0,
        pending_timeout=3600.0,
        retry_initial=5.0,
        retry_max=60.0,
    )


@dataclass
class _Spares:
    """What the request's new identifiers are drawn from."""

    iccids: Iterator[str]
    imeis: Iterator[str]
    #: Devices of the account that are not active: their ICCIDs are in use.
    in_use: Iterator[Device]
    #: The account's plan codes.
    codes: list[str]


def plan_request(
    sim: ThingSpaceSimulator, n: int, seed: int
) -> tuple[list[Planned], dict[str, int], list[str]]:
    """The request's devices: mostly swaps of every kind, a few designed to fail; with the
    request's mix and the IMEIs left over."""
    rng = random.Random(seed)
    population = sim.populate(
        ACCOUNT,
        math.ceil(n * 1.25) + 20,
        seed=seed,
        n_spare_sims=n + 10,
        n_spare_imeis=n + 10,
    )
    active = [d for d in population.devices if d.state == "active" and d.mdn and d.iccid and d.imei]
    others = [d for d in population.devices if d.state != "active" and d.iccid]
    per_kind = max(1, round(n / 100))
    designs = [BAD_CHECK_DIGIT, UNKNOWN_DEVICE, ICCID_IN_USE, SUSPENDED, TAKEN] * per_kind
    if len(active) < n or len(others) < per_kind:
        raise CliError("the generated inventory is too small; try another --seed", 1)
    rng.shuffle(active)
    plan = dict(zip(rng.sample(range(n), len(designs)), designs, strict=True))
    lines = iter(active)
    spares = _Spares(
        iter(population.spare_iccids),
        iter(population.spare_imeis),
        iter(others),
        [p.code for p in population.plans if p.code],
    )
    planned: list[Planned] = []
    for index in range(n):
        design = plan.get(index, SWAP)
        if design == UNKNOWN_DEVICE:
            item = SwapItem.sim_swap(next(spares.iccids), next(spares.iccids), source=design)
            planned.append(Planned(item, design, None, "iccid"))
        else:
            planned.append(_plan_line(next(lines), design, rng, spares))
    request_mix = Counter(p.kind for p in planned)
    request_mix["plan_changes"] = sum(p.item.target_plan is not None for p in planned)
    request_mix["designed_failures"] = len(designs)
    return planned, dict(request_mix), list(spares.imeis)


def _plan_line(device: Device, design: str, rng: random.Random, spares: _Spares) -> Planned:
    """The swap of one active line, as ``design`` wants it."""
    iccid, imei, mdn = device.iccid or "", device.imei or "", device.mdn or ""
    kind = "iccid"
    if design == BAD_CHECK_DIGIT:
        good = next(spares.iccids)
        new = [DeviceId(good[:-1] + str((int(good[-1]) + 1) % 10), "iccid")]
    elif design == ICCID_IN_USE:
        holder = next(spares.in_use)
        assert holder.iccid
        new = [DeviceId(holder.iccid, "iccid")]
    elif design in (SUSPENDED, TAKEN):
        new = [DeviceId(next(spares.iccids), "iccid")]
    else:
        draw = rng.random()
        kind = "iccid" if draw < 0.6 else "imei" if draw < 0.85 else "both"
        new = []
        if kind in ("iccid", "both"):
            new.append(DeviceId(next(spares.iccids), "iccid"))
        if kind in ("imei", "both"):
            new.append(DeviceId(next(spares.imeis), "imei"))
    target = None
    if design == SWAP and rng.random() < 0.2:
        target = next((c for c in spares.codes if c != device.plan), None)
    current = DeviceId(imei, "imei") if kind == "imei" else DeviceId(iccid, "iccid")
    item = SwapItem(current, tuple(new), target_plan=target, source=design)
    return Planned(item, design, mdn, kind)


def disrupt(
    sim: ThingSpaceSimulator, planned: list[Planned], imeis: list[str], clock: Clock
) -> tuple[int, int]:
    """What happens on ThingSpace between validation and processing, by design."""
    suspended = taken = 0
    spare_imeis = iter(imeis)
    sim.add_account(OTHER_ACCOUNT, organization_name="Another customer")
    for entry in planned:
        if entry.design == SUSPENDED and entry.line:
            device = sim.device(entry.line, "mdn")
            device.state = "suspend"  # suspended by someone else, after validation
            device.suspended_at = clock.time()
            suspended += 1
        elif entry.design == TAKEN:
            iccid = entry.item.new[0].id  # another account activates this SIM meanwhile
            sim.add_device(OTHER_ACCOUNT, iccid=iccid, imei=next(spare_imeis), state="preactive")
            taken += 1
    return suspended, taken
