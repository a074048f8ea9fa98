"""Validation of a swap request, per device, before anything is queued."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone

from .._core.commands import Concurrently, Flow
from ..errors import IdentifierError
from ..identifiers import parse_identifier
from ..models import Device, DeviceId
from .ports import ThingSpace
from .reports import ItemCheck, Problem, ValidationReport
from .requests import SUPPORTED_OPTIONS, SwapItem, SwapRequest, infer_option

__all__ = ["BULK_LOOKUP", "validate"]

#: From this many devices on, the account's inventory is listed once instead of one lookup each.
BULK_LOOKUP = 50
#: ThingSpace allows this many plan changes per line per month.
PLAN_CHANGES_PER_MONTH = 4
#: In a request of ``BULK_LOOKUP`` devices or more, the plan history reads run this many at
#: once, so their round trips overlap (the client's rate limit still holds)...
CHECK_CONCURRENCY = 8
#: ...in rounds of at most this many reads (what is held while they run).
CHECK_ROUND = 256

Checked = tuple[Device | None, list[Problem]]


def validate(
    api: ThingSpace,
    request: SwapRequest,
    *,
    line_owners: Callable[[Iterable[str]], Mapping[str, str]],
    now: float,
) -> Flow[ValidationReport]:
    """Check every item; nothing is changed. ``line_owners`` names the change in flight on
    each line that has one.

    A ThingSpace error (after the client's own retries) is raised, not reported against the
    device: the device is not known to be invalid, and nothing has been created yet."""
    account = request.account_name
    plans = yield from api.plans(account)
    known_plans = {p.code for p in plans if p.code} | {p.name for p in plans}
    request_problems: list[Problem] = []
    if request.target_plan and request.target_plan not in known_plans:
        request_problems.append(
            Problem("plan.unknown", f"plan {request.target_plan!r} is not one of the account's")
        )

    lookup = yield from _lookup(api, request)
    checked = yield from _check_items(api, lookup, known_plans, request, now)
    mdns = [device.mdn if device else None for device, _ in checked]
    lines = Counter(line for line in mdns if line)
    new_ids = Counter(ref for item in request.items for ref in item.new)
    owners = line_owners(lines)
    final: list[ItemCheck] = []
    for index, (item, (device, problems)) in enumerate(zip(request.items, checked, strict=True)):
        line = mdns[index]
        if line and lines[line] > 1:
            problems.append(Problem("line.duplicate", f"line {line} appears more than once"))
        if line and (owner := owners.get(line)):
            problems.append(
                Problem("line.in_flight", f"line {line} already has change {owner} in flight")
            )
        problems += [
            Problem("new_id.duplicate", f"new {d.kind} {d.id} is asked for more than once")
            for d in item.new
            if new_ids[d] > 1
        ]
        target = item.target_plan or request.target_plan
        option = item.resolved_option
        final.append(ItemCheck(index, item, option, line, device, target, tuple(problems)))
    return ValidationReport(
        account, tuple(sorted(known_plans)), tuple(final), tuple(request_problems)
    )


#: How devices are found: one call each (a flow per identifier), or in the devices one listing
#: of the account found, by identifier.
Lookup = Callable[[DeviceId], Flow[Device | None]] | Mapping[DeviceId, Device]


def _lookup(api: ThingSpace, request: SwapRequest) -> Flow[Lookup]:
    """A way to find a device by identifier: one listing for a big request, else one call each."""
    account = request.account_name
    if len(request.items) < BULK_LOOKUP:

        def one(ref: DeviceId) -> Flow[Device | None]:
            return api.device(ref, account)

        return one
    wanted = {ref for item in request.items for ref in (item.device, *item.new)}
    index = yield from api.devices_named(account, wanted)
    return index


def _check_items(
    api: ThingSpace, lookup: Lookup, plans: set[str], request: SwapRequest, now: float
) -> Flow[list[Checked]]:
    """Every item's checks, in order. In a request of ``BULK_LOOKUP`` devices or more, the plan
    history reads are left for later and run ``CHECK_CONCURRENCY`` at a time, a round of
    ``CHECK_ROUND`` after another (each read starts only when its turn comes)."""
    bulk = len(request.items) >= BULK_LOOKUP
    results: list[Checked] = []
    later: list[tuple[int, Flow[list[Problem]]]] = []
    for item in request.items:
        deferred: list[Flow[list[Problem]]] = []
        results.append((yield from _check_item(api, item, lookup, plans, request, now, deferred)))
        later += [(len(results) - 1, flow) for flow in deferred]
        if not bulk or len(later) >= CHECK_ROUND:
            yield from _round(later, results)
            later = []
    yield from _round(later, results)
    return results


def _round(later: list[tuple[int, Flow[list[Problem]]]], results: list[Checked]) -> Flow[None]:
    """Run the reads left for later and add their problems to their items."""
    if not later:
        return
    found = yield Concurrently(tuple(flow for _, flow in later), CHECK_CONCURRENCY)
    for (index, _), problems in zip(later, found, strict=True):
        results[index][1].extend(problems)


def _check_item(
    api: ThingSpace,
    item: SwapItem,
    lookup: Lookup,
    plans: set[str],
    request: SwapRequest,
    now: float,
    later: list[Flow[list[Problem]]],
) -> Flow[Checked]:
    """One item's checks; the plan history read is appended to ``later`` instead of run."""
    problems = _format_problems(item)
    if problems:
        return None, problems
    device = (
        lookup.get(item.device) if isinstance(lookup, Mapping) else (yield from lookup(item.device))
    )
    if device is None:
        return None, [
            Problem(
                "device.not_found",
                f"no {item.device.kind} {item.device.id} in account {request.account_name}",
            )
        ]
    if device.state == "suspend" and request.restore_suspended:
        problems += yield from _provisioning_limit(api, item.device, now)
    elif device.state != "active":
        problems.append(
            Problem("device.not_active", f"device is {device.state or 'in no state'}, not active")
        )
    if not device.mdn:
        problems.append(
            Problem(
                "device.no_mdn", "device has no MDN (ThingSpace requires one to change identifiers)"
            )
        )
    for new in item.new:
        if device.identifier(new.kind) == new.id:
            problems.append(Problem("new_id.same", f"device already has {new.kind} {new.id}"))
            continue
        holder = lookup.get(new) if isinstance(lookup, Mapping) else (yield from lookup(new))
        if holder is not None:
            problems.append(
                Problem(
                    "new_id.in_use",
                    f"{new.kind} {new.id} is already in the account (on line {holder.mdn})",
                )
            )
    target = item.target_plan or request.target_plan
    if target and target not in plans:
        problems.append(Problem("plan.unknown", f"plan {target!r} is not one of the account's"))
    elif target and target != device.service_plan and not problems:
        later.append(_plan_limit(api, item.device, now))  # a generator: nothing runs yet
    return device, problems


def _format_problems(item: SwapItem) -> list[Problem]:
    problems: list[Problem] = []
    inferred = infer_option(item.new)
    if inferred is None:
        return [
            Problem(
                "option.unsupported", "new identifiers must be an ICCID, an IMEI, or one of each"
            )
        ]
    if item.option is not None and item.option is not inferred:
        supported = item.option in SUPPORTED_OPTIONS.values()
        what = "does not fit the new identifiers given" if supported else "is not supported"
        problems.append(Problem("option.mismatch", f"{item.option.value} {what}"))
    for ref in (item.device, *item.new):
        try:
            parse_identifier(ref.kind, ref.id)
        except IdentifierError as error:
            problems.append(Problem("identifier.invalid", error.message))
    return problems


def _plan_limit(api: ThingSpace, ref: DeviceId, now: float) -> Flow[list[Problem]]:
    moment = datetime.fromtimestamp(now, timezone.utc)
    month = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    page = yield from api.history(ref, month.isoformat(), moment.isoformat())
    changes = sum(1 for e in page.provisioning_history if "plan" in (e.event_type or "").lower())
    if changes >= PLAN_CHANGES_PER_MONTH:
        return [
            Problem(
                "plan.limit",
                f"{changes} plan changes this month already "
                f"(ThingSpace allows {PLAN_CHANGES_PER_MONTH})",
            )
        ]
    return []


#: ThingSpace allows most accounts this many provisioning actions per line per day.
PROVISIONING_ACTIONS_PER_DAY = 5
_PROVISIONING_EVENTS = ("activate", "suspend", "restore", "deactivate")


def _provisioning_limit(api: ThingSpace, ref: DeviceId, now: float) -> Flow[list[Problem]]:
    """A suspended line to restore first: is a provisioning action left today?"""
    moment = datetime.fromtimestamp(now, timezone.utc)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    page = yield from api.history(ref, day.isoformat(), moment.isoformat())
    actions = sum(
        1
        for e in page.provisioning_history
        if (e.event_type or "").lower().startswith(_PROVISIONING_EVENTS)
    )
    if actions >= PROVISIONING_ACTIONS_PER_DAY:
        return [
            Problem(
                "provisioning.limit",
                f"{actions} provisioning actions today already "
                f"(ThingSpace allows {PROVISIONING_ACTIONS_PER_DAY}); cannot restore the line",
            )
        ]
    return []
