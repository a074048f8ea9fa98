"""The ports the orchestrator drives: queue, store (with its audit log), notifier and metrics.

Backends implement these small protocols; ``thingspace_swap.testing.contract`` is a test suite
any adapter can run against itself. Every store write is conditional: on a version mismatch it
raises [ConflictError][thingspace_swap.swap.ports.ConflictError] and writes nothing.

Messages that must not be lost are written *with* the records they follow from (a transactional
outbox): a store whose queue shares its transactions (SQLite) enqueues them in the same
transaction; another (DynamoDB beside SQS) keeps them in an outbox in the same write, and
[Store.relay][thingspace_swap.swap.ports.Store.relay] moves them to the queue afterwards. Either way
a message exists if and only if its write committed.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

from ..models import DeviceId
from .model import Batch, Change, Phase, Priority

if TYPE_CHECKING:
    from .._core.commands import Flow
    from .._core.endpoint import Driver
    from ..models import Device, HistoryPage, RequestAccepted, RequestStatus, ServicePlan

__all__ = [
    "AuditChain",
    "AuditEntry",
    "BatchPart",
    "ConflictError",
    "InboxEntry",
    "JoinedParts",
    "Metrics",
    "Notification",
    "Notifier",
    "OutgoingMessage",
    "PhaseIndex",
    "Queue",
    "QueueStats",
    "ReceivedMessage",
    "Store",
    "ThingSpace",
    "decode_body",
    "encode_body",
    "require_follows",
]


class ConflictError(Exception):
    """A conditional write lost: the record changed since it was read (or already exists)."""


class BatchCancelledError(ConflictError):
    """A change was not written because its batch is cancelled (``update_change`` with
    ``unless_cancelled``)."""


# Queue -------------------------------------------------------------------------------------


@attrs.frozen
class OutgoingMessage:
    """A message to send. ``group`` serialises work on one line (an SQS FIFO MessageGroupId);
    ``dedup_id`` drops a second send of the same message; ``delay`` holds it back (seconds)."""

    body: Mapping[str, Any]
    group: str
    dedup_id: str
    delay: float = 0.0
    priority: Priority = Priority.NORMAL


@attrs.frozen
class ReceivedMessage:
    """A delivered message; hand ``receipt`` back to ``ack``/``release``/``extend``."""

    message_id: str
    receipt: str
    body: Mapping[str, Any] | None
    raw: str
    group: str
    receive_count: int
    priority: Priority = Priority.NORMAL


@attrs.frozen
class QueueStats:
    visible: int
    in_flight: int
    delayed: int
    dead: int
    oldest_age: float = 0.0


def decode_body(raw: str) -> dict[str, Any] | None:
    """A message's text as the JSON object it should be (``ReceivedMessage.body``), or None
    when it is not one (a poison message)."""
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


_BODY_JSON = json.JSONEncoder(separators=(",", ":"), sort_keys=True)


def encode_body(body: Mapping[str, Any]) -> str:
    """A message body as the text a queue carries (compact JSON, keys sorted; DynamoDB's outbox
    keeps it so until it is sent), which [decode_body][thingspace_swap.swap.ports.decode_body] reads
    back."""
    return _BODY_JSON.encode(dict(body))


class Queue(Protocol):
    """At-least-once delivery with visibility timeouts, message groups, priorities and a
    dead-letter queue after ``max_receives`` deliveries.

    ``max_delay`` is the longest ``delay`` a message can be sent with (seconds); a check due
    later is sent again when it arrives early."""

    max_delay: float

    def send(self, messages: Sequence[OutgoingMessage]) -> None: ...

    def receive(
        self, max_messages: int = 10, visibility_timeout: float = 60.0
    ) -> list[ReceivedMessage]:
        """Up to ``max_messages`` visible messages, high priority first, at most one in flight
        per group; each stays invisible for ``visibility_timeout`` unless acked."""
        ...

    def ack(self, message: ReceivedMessage) -> None: ...

    def release(self, message: ReceivedMessage, delay: float = 0.0) -> None:
        """Make the message visible again after ``delay`` (counts as a delivery)."""
        ...

    def extend(self, message: ReceivedMessage, visibility_timeout: float) -> None: ...

    def dead_letter(self, message: ReceivedMessage, reason: str) -> None:
        """Move a message to the dead-letter queue now, with the reason."""
        ...

    def dead_letters(self) -> list[tuple[ReceivedMessage, str]]: ...

    def stats(self) -> QueueStats: ...


# Store and audit ---------------------------------------------------------------------------


@attrs.frozen
class AuditEntry:
    """One transition of a batch or a change, hash-chained to the one before it."""

    subject: str  # "batch:<id>" or "change:<id>"
    batch_id: str
    seq: int
    at: float
    actor: str
    action: str
    before: str | None
    after: str | None
    request_id: str | None
    detail: str
    prev_hash: str
    hash: str


@attrs.frozen
class AuditChain:
    """One subject's audit entries in sequence order, with the head its record names (the
    record's ``audit_seq`` and ``audit_hash``): what
    [Store.audit_chains][thingspace_swap.swap.ports.Store.audit_chains] yields."""

    subject: str
    head_seq: int
    head_hash: str
    entries: Sequence[AuditEntry]


def require_follows(subject: str, seq: int, audit: AuditEntry | None) -> None:
    """Refuse ([ConflictError][thingspace_swap.swap.ports.ConflictError]) an audit entry that does
    not extend ``subject``'s chain whose head is ``seq``: every store checks this in the same write
    as the record."""
    if audit is not None and (audit.seq != seq + 1 or audit.subject != subject):
        raise ConflictError(f"{subject}: audit entry {audit.seq} does not follow {seq}")


@attrs.frozen
class InboxEntry:
    """A callback kept durably, keyed by (request_id, device key)."""

    request_id: str
    device_key: str
    body: Mapping[str, Any]
    received_at: float


@attrs.frozen
class BatchPart:
    """Some changes of a new batch, with their first audit entries and the messages written
    with them (what
    [Store.create_batch_in_parts][thingspace_swap.swap.ports.Store.create_batch_in_parts] takes)."""

    changes: Sequence[Change]
    audit: Sequence[AuditEntry]
    messages: Sequence[OutgoingMessage] = ()

    @classmethod
    def joined(cls, parts: Iterable[BatchPart]) -> BatchPart:
        """The parts as one (for a store that holds a new batch at once anyway)."""
        taken = list(parts)
        return cls(
            [change for part in taken for change in part.changes],
            [entry for part in taken for entry in part.audit],
            [message for part in taken for message in part.messages],
        )


class JoinedParts:
    """``create_batch_in_parts`` for a store that holds a new batch at once anyway: the parts
    joined into one, then the store's own ``create_batch`` (the in-memory and DynamoDB stores)."""

    def create_batch(
        self,
        batch: Batch,
        changes: Sequence[Change],
        audit: Sequence[AuditEntry],
        messages: Sequence[OutgoingMessage] = (),
    ) -> None:
        raise NotImplementedError

    def create_batch_in_parts(
        self, batch: Batch, audit: Sequence[AuditEntry], parts: Iterable[BatchPart]
    ) -> None:
        whole = BatchPart.joined(parts)
        self.create_batch(batch, whole.changes, [*audit, *whole.audit], whole.messages)


class Store(Protocol):
    """Durable records of batches and changes, their audit chains, the callback inbox and the
    outbox of messages written with them."""

    def create_batch(
        self,
        batch: Batch,
        changes: Sequence[Change],
        audit: Sequence[AuditEntry],
        messages: Sequence[OutgoingMessage] = (),
    ) -> None:
        """Write a new batch, its changes, their first audit entries and ``messages``, all or
        nothing; claim each change's line (ConflictError if a line already has a change in
        flight)."""
        ...

    def create_batch_in_parts(
        self, batch: Batch, audit: Sequence[AuditEntry], parts: Iterable[BatchPart]
    ) -> None:
        """[create_batch][thingspace_swap.swap.ports.Store.create_batch] for a batch too big to
        hold at once: ``audit`` is the batch's own entries, and ``parts`` its changes (with
        their entries and messages), each part made only when the store takes it. All or
        nothing, like ``create_batch``: no part of the batch is visible (or runnable) unless
        all of it is written."""
        ...

    def get_batch(self, batch_id: str) -> Batch | None: ...

    def update_batch(
        self, batch: Batch, expected_version: int, audit: AuditEntry | None
    ) -> None: ...

    def count_finished(self, batch_id: str) -> Batch | None:
        """Add one to the batch's count of finished changes (``terminal``) and its version, in
        one atomic write whatever else writes the batch; the batch as it is afterwards (None
        when there is no such batch)."""
        ...

    def get_change(self, change_id: str) -> Change | None: ...

    def update_change(
        self,
        change: Change,
        expected_version: int,
        audit: AuditEntry | None,
        messages: Sequence[OutgoingMessage] = (),
        *,
        unless_cancelled: bool = False,
    ) -> None:
        """Replace a change if its stored version is ``expected_version``; append ``audit``
        and keep ``messages`` with it; release its line when it becomes terminal, claim it
        again when it leaves. With ``unless_cancelled``, only while its batch is not cancelled
        (else [BatchCancelledError][thingspace_swap.swap.ports.BatchCancelledError]), checked
        in the same write."""
        ...

    def relay(self, queue: Queue, messages: Sequence[OutgoingMessage] | None = None) -> int:
        """Send messages written with earlier writes to ``queue`` and forget them: the given
        ones (just written by the caller), or with None all that are still waiting (after a
        crash between a write and its relay). Returns how many were sent.

        A message may be sent twice (its ``dedup_id`` lets the queue drop the copy), never
        lost. A store whose queue shares its transactions has nothing to send, and raises
        ``ValueError`` when ``queue`` is not that queue."""
        ...

    def changes(self, batch_id: str) -> Iterable[Change]: ...

    def change_for_request(self, request_id: str) -> Change | None: ...

    def line_owner(self, line: str) -> str | None:
        """The change currently holding ``line`` (one not yet terminal), if any."""
        ...

    def line_owners(self, lines: Iterable[str]) -> dict[str, str]:
        """[line_owner][thingspace_swap.swap.ports.Store.line_owner] of many lines at once
        (as few reads as the store allows): the lines held, with their changes."""
        ...

    def change_for_device(self, device_id: DeviceId) -> Change | None:
        """The change not yet terminal that names ``device_id`` (old, new or replaced
        identifier, or its MDN), to correlate a callback whose requestId is not stored yet."""
        ...

    def batches(self, *, open_only: bool = True) -> Iterable[Batch]:
        """Batches; by default only those not completed yet (``completed_at`` is None, which
        includes cancelled batches whose submitted changes are still running)."""
        ...

    def due_changes(self, now: float, limit: int = 100) -> list[Change]:
        """Changes not terminal whose deadline has passed (for the reconciler sweep)."""
        ...

    def audit(self, subject: str) -> list[AuditEntry]:
        """The subject's audit entries, in sequence order."""
        ...

    def audit_chains(self, batch_id: str) -> Iterable[AuditChain]:
        """Every audit chain of a batch, with the head its record names: the batch's own
        first, then its changes' in the order of ``changes``. Read a page of changes at a time
        as it is iterated (memory does not grow with the batch); nothing for an unknown
        batch."""
        ...

    def put_inbox(self, entry: InboxEntry) -> bool:
        """Keep a callback; False when the same (request_id, device) was already kept."""
        ...

    def inbox(self, request_id: str) -> list[InboxEntry]: ...


@runtime_checkable
class PhaseIndex(Protocol):
    """What a store may add so a batch's status reads aggregates and one page of changes instead
    of every change (SQLite, DynamoDB and the in-memory store have it; without it, ``summary``
    reads the batch's changes once, a page at a time)."""

    def phase_counts(self, batch_id: str) -> dict[str, int]:
        """How many of the batch's changes are in each phase (by ``Phase`` value)."""
        ...

    def changes_in(self, batch_id: str, phases: Iterable[Phase], limit: int) -> list[Change]:
        """The batch's first ``limit`` changes, in index order, whose phase is one of
        ``phases``."""
        ...


# Notifications and metrics -----------------------------------------------------------------


@attrs.frozen
class Notification:
    """A message for subscribers. ``event_id`` is stable (redelivery repeats it), and
    ``attributes`` (event_type, state, account, batch_id, severity) are what filters match on."""

    event_id: str
    event_type: str
    subject: str
    attributes: Mapping[str, str]
    payload: Mapping[str, Any]


class Notifier(Protocol):
    """Publishes each swap event, a [Notification][thingspace_swap.swap.ports.Notification], to
    its subscribers."""

    def publish(self, notification: Notification) -> None: ...


class Metrics(Protocol):
    """Counters and timings; names are dotted (``swap.change.duration``)."""

    def count(self, name: str, value: float = 1.0, **tags: str) -> None: ...

    def observe(self, name: str, value: float, **tags: str) -> None: ...

    def gauge(self, name: str, value: float, **tags: str) -> None: ...


# ThingSpace --------------------------------------------------------------------------------


class ThingSpace(Protocol):
    """The ThingSpace operations the lifecycle uses, as flows it composes with ``yield from``,
    and the driver (the client's, sync or async) that runs the whole lifecycle flow."""

    driver: Driver

    def device(self, ref: DeviceId, account_name: str) -> Flow[Device | None]:
        """The device, read by one identifier; None when ThingSpace does not know it."""
        ...

    def devices_named(
        self, account_name: str, wanted: Collection[DeviceId]
    ) -> Flow[dict[DeviceId, Device]]:
        """The account's devices that carry an identifier in ``wanted``, by that identifier:
        the account's listing read page after page, keeping only those (to look many devices
        up at once)."""
        ...

    def plans(self, account_name: str) -> Flow[list[ServicePlan]]: ...

    def history(self, ref: DeviceId, earliest: str, latest: str) -> Flow[HistoryPage]:
        """The device's provisioning history between two ISO 8601 times."""
        ...

    def request_status(self, request_id: str, account_name: str) -> Flow[RequestStatus]: ...

    def change_identifier(
        self, device: DeviceId, new: tuple[DeviceId, ...], option: str, service_type: str
    ) -> Flow[RequestAccepted]:
        """Submit the swap (never resent after an unknown outcome)."""
        ...

    def restore(self, device: DeviceId, account_name: str) -> Flow[RequestAccepted]: ...

    def select(self, account_name: str, filters: dict[str, object]) -> Flow[list[Device]]:
        """The account's devices matching ThingSpace's list filters."""
        ...

    def change_plan(
        self, device: DeviceId, plan: str, account_name: str
    ) -> Flow[RequestAccepted]: ...
