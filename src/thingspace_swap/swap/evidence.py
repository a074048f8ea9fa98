"""Whether a request whose outcome is unknown can be sent again: the evidence, weighed.

A retry of a change whose last request has no known outcome (``Change.in_doubt``) may send a
second request only when ThingSpace provably did not apply the first and is not processing
it. [weigh][thingspace_swap.swap.evidence.weigh] decides from what ThingSpace shows: the device, the
request's status (when its id is known; ThingSpace documents the status call for some actions only)
and the line's provisioning history since the request was sent. It does no I/O; the orchestrator
gathers the evidence.

Only a reported failure proves that nothing was applied: no trace at all does not (a request
whose response was lost may still be queued at ThingSpace). History entries count from the
moment the request was recorded as about to be sent, on this machine's clock: a clock ahead of
ThingSpace's hides entries (the retry is then refused, the safe way round).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timezone

import attrs

from ..models import Device, HistoryEntry
from .model import Change, Step

__all__ = ["Evidence", "Verdict", "history_window", "weigh"]

#: Words in a provisioning-history event type that name each step's request (lower case).
_EVENT_WORDS = {
    Step.IDENTIFIER: ("identifier", "deviceid", "change iccid", "change imei"),
    Step.PLAN: ("plan",),
    Step.RESTORE: ("restore",),
}
#: Words in a status that mean the request failed (lower case).
_FAILED_WORDS = ("fail", "error", "reject", "cancel")


@attrs.frozen
class Evidence:
    """What ThingSpace showed about a change whose last request's outcome is unknown.

    Attributes:
        device: The line's device (None: not found), or why it could not be read.
        request_status: ThingSpace's status of the request (``Pending``, ``Success``,
            ``Failure``), None when its id is unknown or the status is not available.
        history: Provisioning-history entries of the line since the request was sent, or why
            they could not be read.
        history_complete: False when ThingSpace had more entries than it returned.
    """

    device: Device | str | None
    request_status: str | None = None
    history: Sequence[HistoryEntry] | str = ()
    history_complete: bool = True


@attrs.frozen
class Verdict:
    """``settled`` says why a new request is safe; None means it is not, and ``doubt`` says why."""

    settled: str | None
    doubt: str = ""


def history_window(change: Change, now: float) -> tuple[str, str]:
    """The ISO 8601 ``earliest`` and ``latest`` to ask the provisioning history for."""
    start = change.submitted_at if change.submitted_at is not None else change.created_at
    return _iso(start), _iso(max(now, start))


def weigh(change: Change, evidence: Evidence) -> Verdict:
    """Whether the change's request in doubt can be sent again, and why (or why not)."""
    step = change.in_doubt
    if step is None:
        return Verdict("no request of the last attempt is in doubt")
    device = evidence.device
    if isinstance(device, str):
        return Verdict(None, f"the device cannot be read ({device})")
    if device is None:
        return Verdict(None, f"line {change.line} is not found on ThingSpace")
    if _took_effect(change, step, device):
        return Verdict(f"the earlier {step.value} request took effect on ThingSpace")
    status = (evidence.request_status or "").strip()
    if status:
        if _failed(status):
            return Verdict(f"ThingSpace reports request {change.request_id} as {status}")
        return Verdict(
            None, f"ThingSpace reports request {change.request_id} as {status}, not failed"
        )
    if isinstance(evidence.history, str):
        return Verdict(None, f"the provisioning history cannot be read ({evidence.history})")
    since = change.submitted_at if change.submitted_at is not None else change.created_at
    relevant = [e for e in evidence.history if _about(e, step) and _at_or_after(e, since)]
    pending = [e for e in relevant if not _failed(e.status or "")]
    if pending:
        entry = pending[0]
        return Verdict(
            None,
            f"the provisioning history shows a {entry.event_type} request"
            f" {entry.status or 'with no status'} at {entry.occurred_at}",
        )
    if not evidence.history_complete:
        return Verdict(None, "the provisioning history has more entries than ThingSpace returned")
    if relevant:
        entry = relevant[-1]
        return Verdict(
            f"the provisioning history shows the {entry.event_type} request"
            f" {entry.status} at {entry.occurred_at}"
        )
    return Verdict(
        None,
        "ThingSpace shows no failure of it (no request status; nothing in the line's"
        " provisioning history since it was sent): it may still be processed",
    )


def _took_effect(change: Change, step: Step, device: Device) -> bool:
    if step is Step.IDENTIFIER:
        present = set(device.device_ids)
        return all(new in present for new in change.new_ids)
    if step is Step.PLAN:
        return change.target_plan is not None and device.service_plan == change.target_plan
    return device.state == "active"


def _failed(status: str) -> bool:
    lowered = status.lower()
    return any(word in lowered for word in _FAILED_WORDS)


def _about(entry: HistoryEntry, step: Step) -> bool:
    kind = (entry.event_type or "").lower()
    return any(word in kind for word in _EVENT_WORDS[step])


def _at_or_after(entry: HistoryEntry, since: float) -> bool:
    """Whether the entry is from ``since``'s second or later (ThingSpace gives whole seconds);
    an entry with no readable time counts (it might be the request's)."""
    if not entry.occurred_at:
        return True
    try:
        moment = datetime.fromisoformat(entry.occurred_at.strip().replace("Z", "+00:00"))
    except ValueError:
        return True
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp() >= math.floor(since)


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, tz=timezone.utc).isoformat(timespec="seconds")
