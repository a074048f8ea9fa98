"""Announcements: the notifications and metrics of what happened to a batch or a change. Each
notification is built here, once, with an id derived from what it reports, so a repeat after a
crash is the same notification (subscribers deduplicate on ``event_id``)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from typing import Any

from ...models import CarrierServiceCallback
from ..model import Batch, Change, Phase
from ..ports import AuditEntry, Notification
from ..store_rules import batch_subject, change_subject
from ._context import Context

__all__ = ["Announcer", "callback_body", "device_key"]

logger = logging.getLogger("thingspace_swap.swap")

_CHANGE_EVENTS = {
    Phase.COMPLETED: ("change.completed", "info"),
    Phase.FAILED: ("change.failed", "error"),
    Phase.MANUAL_REVIEW: ("change.manual_review", "warning"),
    Phase.CANCELLED: ("change.cancelled", "info"),
}


class Announcer:
    """Publishes notifications (a notifier outage never stops the lifecycle) and counts."""

    def __init__(self, context: Context) -> None:
        self._context = context

    def batch_created(self, batch: Batch, seq: int) -> None:
        self._context.metrics.count("swap.batch.created")
        payload = {"size": batch.size, "rejected": batch.terminal, "actor": batch.actor}
        self._batch("batch.created", batch, seq, "info", payload)

    def progress(self, batch: Batch) -> None:
        """A notification each time another tenth of the batch's changes has finished
        (``batch`` as its last finished change was just counted)."""
        size, terminal = max(1, batch.size), batch.terminal
        if (terminal * 10) // size > ((terminal - 1) * 10) // size and terminal < batch.size:
            payload = {"done": terminal, "size": batch.size}
            self._batch("batch.progress", batch, terminal, "info", payload)

    def batch_completed(self, batch: Batch, summary: Mapping[str, int]) -> None:
        """Announce a batch just written as completed (or cancelled), with its summary."""
        self._context.metrics.count("swap.batch.completed")
        rejected = summary.get(Phase.REJECTED.value, 0)
        ok = summary.get(Phase.COMPLETED.value, 0) == batch.terminal - rejected
        payload = {"summary": dict(summary), "size": batch.size}
        self._batch("batch.completed", batch, batch.audit_seq, "info" if ok else "warning", payload)

    def batch_cancelled(self, batch: Batch, seq: int, actor: str) -> None:
        self._batch("batch.cancelled", batch, seq, "warning", {"actor": actor})

    def change_finished(self, change: Change, entry: AuditEntry) -> None:
        """Count a change that reached a terminal phase and announce it."""
        metrics = self._context.metrics
        metrics.count("swap.change.terminal", phase=change.phase.value)
        if change.error is not None:
            metrics.count("swap.change.error", category=change.error.category.value)
        if change.phase is Phase.COMPLETED:
            duration = (change.completed_at or 0.0) - change.created_at
            metrics.observe("swap.change.duration", duration)
        if change.phase not in _CHANGE_EVENTS:
            return
        event_type, severity = _CHANGE_EVENTS[change.phase]
        error = change.error
        payload = {
            "change_id": change.change_id,
            "line": change.line,
            "option": change.option.value if change.option else None,
            "new_ids": [f"{d.kind}:{d.id}" for d in change.new_ids],
            "request_id": change.request_id,
            "error": error.message if error else None,
            "error_category": error.category.value if error else None,
            "attempt": change.attempt,
        }
        self._change(event_type, change, entry.seq, severity, payload)

    def inconsistent(self, change: Change, problem: str) -> None:
        """A data-consistency alert: ThingSpace disagrees with the change's record."""
        payload = {"change_id": change.change_id, "line": change.line, "problem": problem}
        self._change("alert.consistency", change, change.audit_seq + 1, "error", payload)

    def unmatched(self, callback: CarrierServiceCallback) -> None:
        """A callback no change of this system is waiting for (kept in the inbox)."""
        subject = f"callback:{callback.request_id}:{device_key(callback)}"
        attributes = {"state": "kept", "account": "", "batch_id": "", "severity": "warning"}
        self._publish("callback.unmatched", subject, None, attributes, callback_body(callback))

    def _batch(
        self, event_type: str, batch: Batch, seq: int, severity: str, payload: Mapping[str, Any]
    ) -> None:
        subject, state = batch_subject(batch.batch_id), batch.state.value
        self._record(event_type, subject, batch, state, seq, severity, payload)

    def _change(
        self, event_type: str, change: Change, seq: int, severity: str, payload: Mapping[str, Any]
    ) -> None:
        subject, state = change_subject(change.change_id), change.phase.value
        self._record(event_type, subject, change, state, seq, severity, payload)

    def _record(
        self,
        event_type: str,
        subject: str,
        record: Batch | Change,
        state: str,
        seq: int,
        severity: str,
        payload: Mapping[str, Any],
    ) -> None:
        """A notification about a batch or a change, with the attributes filters match."""
        attributes = {
            "state": state,
            "account": record.account_name,
            "batch_id": record.batch_id,
            "severity": severity,
        }
        self._publish(event_type, subject, seq, attributes, payload)

    def _publish(
        self,
        event_type: str,
        subject: str,
        seq: int | None,
        attributes: Mapping[str, str],
        payload: Mapping[str, Any],
    ) -> None:
        notifier = self._context.notifier
        if notifier is None:
            return
        key = subject if seq is None else f"{subject}:{event_type}:{seq}"
        notification = Notification(
            event_id=hashlib.sha256(key.encode()).hexdigest()[:32],
            event_type=event_type,
            subject=subject,
            attributes={"event_type": event_type, **attributes},
            payload=payload,
        )
        try:
            notifier.publish(notification)
        except Exception:  # a notifier outage must not stop the lifecycle
            logger.exception("publishing %s failed", event_type)
            self._context.metrics.count("swap.notify.error", event_type=event_type)


def device_key(callback: CarrierServiceCallback) -> str:
    """The callback's devices as one inbox key (a callback is kept once per request and key)."""
    return ",".join(sorted(f"{d.kind}:{d.id}" for d in callback.device_ids)) or "-"


def callback_body(callback: CarrierServiceCallback) -> dict[str, Any]:
    """What the inbox keeps of a callback: no credentials."""
    body: dict[str, Any] = {
        "requestId": callback.request_id,
        "deviceIds": [{"id": d.id, "kind": d.kind} for d in callback.device_ids],
        "status": callback.status,
    }
    if callback.fault_response is not None:
        body["faultResponse"] = {
            "faultcode": callback.fault_response.faultcode,
            "faultstring": callback.fault_response.faultstring,
        }
    if callback.device_response is not None:
        body["deviceResponse"] = callback.device_response
    return body
