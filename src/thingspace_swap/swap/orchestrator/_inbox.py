"""The callback inbox: every CarrierService callback is kept durably before it is applied,
and found again by the change that waits for it (matched by requestId, or by device while the
requestId is not stored yet)."""

from __future__ import annotations

from ...models import CarrierServiceCallback, parse_callback
from ..classify import classify_fault
from ..events import CallbackResult
from ..model import Change
from ..ports import InboxEntry
from ._announcer import Announcer, callback_body, device_key
from ._context import Context

__all__ = ["Inbox", "callback_event"]


class Inbox:
    """Keeps callbacks and matches them to changes."""

    def __init__(self, context: Context, announcer: Announcer) -> None:
        self._context = context
        self._announce = announcer

    def keep(self, callback: CarrierServiceCallback) -> tuple[Change | None, bool]:
        """Keep the callback; return its change (None when none matches: the callback is
        quarantined, and announced the first time) and whether it was new."""
        context = self._context
        key = device_key(callback)
        entry = InboxEntry(callback.request_id, key, callback_body(callback), context.clock.time())
        fresh = context.store.put_inbox(entry)
        context.metrics.count("swap.callback.received", duplicate=str(not fresh).lower())
        change = context.store.change_for_request(callback.request_id)
        for device in callback.device_ids if change is None else ():
            change = context.store.change_for_device(device)
            if change is not None:
                break
        if change is None:
            # Applied if its change stores this requestId later, reported now in case it
            # never does (a request this system did not send).
            context.metrics.count("swap.callback.unmatched")
            if fresh:
                self._announce.unmatched(callback)
        return change, fresh

    def kept_callback(self, change: Change) -> CallbackResult | None:
        """The callback kept for the change's current request, as a lifecycle event."""
        assert change.request_id is not None
        for entry in self._context.store.inbox(change.request_id):
            return callback_event(parse_callback(dict(entry.body)))
        return None


def callback_event(callback: CarrierServiceCallback) -> CallbackResult:
    """A callback as the lifecycle event it is."""
    if callback.succeeded:
        return CallbackResult(callback.request_id, True)
    fault = callback.fault_response
    error = classify_fault(
        fault.faultcode if fault else None, fault.faultstring if fault else callback.status
    )
    return CallbackResult(callback.request_id, False, error)
