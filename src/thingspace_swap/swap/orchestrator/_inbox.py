"""The callback inbox: a CarrierService callback is applied at once when its change waits for
it, and otherwise kept durably until its change does (matched by requestId, or by device while
the requestId is not stored yet)."""

from __future__ import annotations

from ...models import CarrierServiceCallback, parse_callback
from ..classify import classify_fault
from ..events import CallbackResult
from ..model import Change, Phase, evolve_change
from ..ports import InboxEntry
from ._announcer import Announcer, callback_body, device_key
from ._context import Context, retry_conflicts

__all__ = ["Inbox", "callback_event"]


class Inbox:
    """Keeps callbacks and matches them to changes."""

    def __init__(self, context: Context, announcer: Announcer) -> None:
        self._context = context
        self._announce = announcer

    def keep(self, callback: CarrierServiceCallback) -> tuple[Change | None, bool]:
        """The callback's change (None when none matches: the callback is quarantined, and
        announced the first time) and whether the callback is new. A callback whose change
        stored its requestId is not kept: the change waits for it (the change's write records
        it; a failed write is answered with an error, so ThingSpace delivers it again), or has
        moved past it (a duplicate). Any other is kept first."""
        context = self._context
        change = context.store.change_for_request(callback.request_id)
        if change is not None:  # it stored the requestId: it waits for this callback, or not
            waits = _waits_for(change, callback.request_id)
            context.metrics.count("swap.callback.received", duplicate=str(not waits).lower())
            return change, waits
        key = device_key(callback)
        entry = InboxEntry(callback.request_id, key, callback_body(callback), context.clock.time())
        fresh = context.store.put_inbox(entry)
        context.metrics.count("swap.callback.received", duplicate=str(not fresh).lower())
        for device in callback.device_ids:
            change = context.store.change_for_device(device)
            if change is not None:
                change = self._nudge(change)
                break
        if change is None:
            # Applied if its change stores this requestId later, reported now in case it
            # never does (a request this system did not send).
            context.metrics.count("swap.callback.unmatched")
            if fresh:
                self._announce.unmatched(callback)
        return change, fresh

    def _nudge(self, change: Change) -> Change | None:
        """A change still submitting has not stored the requestId its callback carries: bump
        its version, so the submitting worker's next write loses, and the worker, writing
        again, looks in the inbox (``kept_callback``). When that write came first, the change
        as it is now."""
        store = self._context.store

        def write(current: Change) -> Change:
            if current.phase is not Phase.SUBMITTING or current.request_id is not None:
                return current
            nudged = evolve_change(current, version=current.version + 1)
            store.update_change(nudged, current.version, None)
            return nudged

        what = f"change {change.change_id}"
        return retry_conflicts(
            lambda: store.get_change(change.change_id), write, what=what, first=change
        )

    def kept_callback(self, change: Change) -> CallbackResult | None:
        """The callback kept for the change's current request, as a lifecycle event."""
        assert change.request_id is not None
        for entry in self._context.store.inbox(change.request_id):
            return callback_event(parse_callback(dict(entry.body)))
        return None


def _waits_for(change: Change, request_id: str) -> bool:
    return change.request_id == request_id and change.phase in (Phase.AWAITING, Phase.SETTLING)


def callback_event(callback: CarrierServiceCallback) -> CallbackResult:
    """A callback as the lifecycle event it is."""
    if callback.succeeded:
        return CallbackResult(callback.request_id, True)
    fault = callback.fault_response
    error = classify_fault(
        fault.faultcode if fault else None, fault.faultstring if fault else callback.status
    )
    return CallbackResult(callback.request_id, False, error)
