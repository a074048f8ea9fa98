"""In-memory backends: thread-safe, with SQS-like delivery and DynamoDB-like conditional writes.

For tests, notebooks and single-process services: nothing survives the process (see SQLite's).
"""

from __future__ import annotations

import heapq
import itertools
import json
import operator
import threading
import uuid
from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import attrs

from ..clock import Clock, SystemClock
from ..models import DeviceId
from ..swap.metrics import MemoryMetrics
from ..swap.model import Batch, BatchState, Change, Phase, Priority, evolve_batch
from ..swap.ports import (
    AuditChain,
    AuditEntry,
    BatchCancelledError,
    ConflictError,
    InboxEntry,
    JoinedParts,
    Notification,
    OutgoingMessage,
    Queue,
    QueueStats,
    ReceivedMessage,
    decode_body,
    encode_body,
    require_follows,
)
from ..swap.store_rules import (
    Holding,
    batch_cancelled,
    batch_changed,
    batch_exists,
    batch_subject,
    change_changed,
    change_subject,
    claimants,
    dead_letter_reason,
    due_at,
    holding,
    is_open,
    require_claimable,
    require_free,
)

__all__ = ["MemoryMetrics", "MemoryNotifier", "MemoryQueue", "MemoryStore"]


@attrs.define
class _Message:
    message_id: str
    raw: str
    group: str
    priority: Priority
    seq: int
    sent_at: float
    visible_at: float
    receive_count: int = 0
    receipt: str | None = None


class MemoryQueue:
    """A queue with SQS semantics: visibility timeouts, FIFO message groups (one message of a
    group in flight at a time), deduplication ids, delays, priorities, and a dead-letter queue
    after ``max_receives`` deliveries."""

    #: Like SQS, so the lifecycle takes the same paths on every backend.
    max_delay: float = 900.0

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        max_receives: int = 5,
        fifo: bool = True,
        dedup_window: float = 300.0,
    ) -> None:
        self._clock = clock or SystemClock()
        self.max_receives = max_receives
        self.fifo = fifo
        self.dedup_window = dedup_window
        self._lock = threading.Lock()
        self._seq = itertools.count()
        self._messages: dict[str, _Message] = {}
        self._ready: list[tuple[int, int, str]] = []  # (-priority, seq, id)
        self._delayed: list[tuple[float, int, str]] = []  # (visible_at, seq, id)
        self._flight: list[tuple[float, str, str]] = []  # (visible_at, receipt, id)
        self._receipts: dict[str, str] = {}
        self._busy_groups: set[str] = set()
        self._parked: dict[str, deque[str]] = defaultdict(deque)
        self._dedup: dict[str, float] = {}  # dedup id -> end of its window
        self._dedup_order: deque[tuple[float, str]] = deque()  # (end, id), oldest first
        self._dead: list[tuple[ReceivedMessage, str]] = []

    # sending -------------------------------------------------------------------------------

    def send(self, messages: Sequence[OutgoingMessage]) -> None:
        with self._lock:
            now = self._clock.monotonic()
            self._forget_dedup(now)
            for message in messages:
                if self._dedup.get(message.dedup_id, -1.0) > now:
                    continue
                expires = now + self.dedup_window
                self._dedup[message.dedup_id] = expires
                self._dedup_order.append((expires, message.dedup_id))
                body = encode_body(message.body)
                self._put_raw(body, message.group, message.priority, message.delay, now)

    def _forget_dedup(self, now: float) -> None:
        """Drop deduplication ids whose window has passed: a long-running queue stays flat."""
        order, dedup = self._dedup_order, self._dedup
        while order and order[0][0] <= now:
            expires, dedup_id = order.popleft()
            if dedup.get(dedup_id) == expires:
                del dedup[dedup_id]

    def send_raw(self, raw: str, *, group: str = "raw", delay: float = 0.0) -> None:
        """Enqueue an arbitrary body (tests use it for poison messages)."""
        with self._lock:
            self._put_raw(raw, group, Priority.NORMAL, delay, self._clock.monotonic())

    def _put_raw(self, raw: str, group: str, priority: Priority, delay: float, now: float) -> None:
        seq = next(self._seq)
        message = _Message(str(uuid.uuid4()), raw, group, priority, seq, now, now + delay)
        self._messages[message.message_id] = message
        if delay > 0:
            heapq.heappush(self._delayed, (message.visible_at, seq, message.message_id))
        else:
            heapq.heappush(self._ready, (-int(priority), seq, message.message_id))

    # receiving -----------------------------------------------------------------------------

    def receive(
        self, max_messages: int = 10, visibility_timeout: float = 60.0
    ) -> list[ReceivedMessage]:
        with self._lock:
            now = self._clock.monotonic()
            self._wake(now)
            out: list[ReceivedMessage] = []
            while self._ready and len(out) < max_messages:
                _, _, message_id = heapq.heappop(self._ready)
                message = self._messages.get(message_id)
                if message is None or message.receipt is not None:
                    continue
                if self.fifo and message.group in self._busy_groups:
                    self._parked[message.group].append(message_id)
                    continue
                message.receive_count += 1
                reason = dead_letter_reason(message.receive_count, self.max_receives)
                if reason is not None:
                    self._bury(message, reason)
                    continue
                receipt = f"{message_id}:{message.receive_count}"
                message.receipt = receipt
                message.visible_at = now + visibility_timeout
                self._receipts[receipt] = message_id
                heapq.heappush(self._flight, (message.visible_at, receipt, message_id))
                if self.fifo:
                    self._busy_groups.add(message.group)
                out.append(self._view(message))
            return out

    def _view(self, message: _Message) -> ReceivedMessage:
        return ReceivedMessage(
            message_id=message.message_id,
            receipt=message.receipt or "",
            body=decode_body(message.raw),
            raw=message.raw,
            group=message.group,
            receive_count=message.receive_count,
            priority=message.priority,
        )

    def _wake(self, now: float) -> None:
        while self._delayed and self._delayed[0][0] <= now:
            _, seq, message_id = heapq.heappop(self._delayed)
            message = self._messages.get(message_id)
            if message is not None and message.receipt is None:
                heapq.heappush(self._ready, (-int(message.priority), seq, message_id))
        while self._flight and self._flight[0][0] <= now:
            _, receipt, message_id = heapq.heappop(self._flight)
            message = self._messages.get(message_id)
            if message is not None and message.receipt == receipt and message.visible_at <= now:
                self._unlock(message)  # visibility timeout: delivered again
                heapq.heappush(self._ready, (-int(message.priority), message.seq, message_id))

    def _unlock(self, message: _Message) -> None:
        if message.receipt is not None:
            self._receipts.pop(message.receipt, None)
        message.receipt = None
        if self.fifo and message.group in self._busy_groups:
            self._busy_groups.discard(message.group)
            parked = self._parked.pop(message.group, deque())
            for message_id in parked:
                other = self._messages.get(message_id)
                if other is not None:
                    heapq.heappush(self._ready, (-int(other.priority), other.seq, message_id))

    def _bury(self, message: _Message, reason: str) -> None:
        view = self._view(message)
        self._messages.pop(message.message_id, None)
        self._dead.append((view, reason))

    def _held(self, received: ReceivedMessage) -> _Message | None:
        message_id = self._receipts.get(received.receipt)
        return self._messages.get(message_id) if message_id else None

    def ack(self, message: ReceivedMessage) -> None:
        with self._lock:
            held = self._held(message)
            if held is not None:
                self._unlock(held)
                self._messages.pop(held.message_id, None)

    def release(self, message: ReceivedMessage, delay: float = 0.0) -> None:
        with self._lock:
            held = self._held(message)
            if held is None:
                return
            self._unlock(held)
            now = self._clock.monotonic()
            held.visible_at = now + delay
            if delay > 0:
                heapq.heappush(self._delayed, (held.visible_at, held.seq, held.message_id))
            else:
                heapq.heappush(self._ready, (-int(held.priority), held.seq, held.message_id))

    def extend(self, message: ReceivedMessage, visibility_timeout: float) -> None:
        with self._lock:
            held = self._held(message)
            if held is not None:
                held.visible_at = self._clock.monotonic() + visibility_timeout
                heapq.heappush(self._flight, (held.visible_at, held.receipt or "", held.message_id))

    def dead_letter(self, message: ReceivedMessage, reason: str) -> None:
        with self._lock:
            held = self._held(message)
            if held is not None:
                self._unlock(held)
                self._bury(held, reason)

    def dead_letters(self) -> list[tuple[ReceivedMessage, str]]:
        with self._lock:
            return list(self._dead)

    def stats(self) -> QueueStats:
        with self._lock:
            now = self._clock.monotonic()
            in_flight = sum(1 for m in self._messages.values() if m.receipt is not None)
            delayed = sum(
                1 for m in self._messages.values() if m.receipt is None and m.visible_at > now
            )
            oldest = min((m.sent_at for m in self._messages.values()), default=now)
            return QueueStats(
                visible=len(self._messages) - in_flight - delayed,
                in_flight=in_flight,
                delayed=delayed,
                dead=len(self._dead),
                oldest_age=now - oldest,
            )


#: An audit entry as a row of plain values (a tuple of strings and numbers, which the garbage
#: collector does not track: the audit trail adds nothing to what a full collection walks).
_audit_row = operator.attrgetter(*(field.name for field in attrs.fields(AuditEntry)))


class MemoryStore(JoinedParts):
    """Batches, changes, audit chains, the callback inbox and the outbox in dicts, behind one
    lock. Messages written with a record wait in the outbox until
    [relay][thingspace_swap.swap.ports.Store.relay] sends them to whichever queue it is given."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._batches: dict[str, Batch] = {}
        self._changes: dict[str, Change] = {}
        self._by_batch: dict[str, list[str]] = defaultdict(list)
        self._by_request: dict[str, str] = {}
        self._lines: dict[str, str] = {}
        self._devices: dict[DeviceId, str] = {}
        self._audit: dict[str, list[tuple[Any, ...]]] = defaultdict(list)  # _audit_row()s
        # request id -> device key -> (body as JSON, received at): kept as text, like the
        # durable backends keep it, so a callback adds no objects for the collector to walk
        self._inbox: dict[str, dict[str, tuple[str, float]]] = defaultdict(dict)
        self._deadlines: list[tuple[float, str]] = []
        self._outbox: dict[str, OutgoingMessage] = {}  # by dedup id, in writing order

    def create_batch(
        self,
        batch: Batch,
        changes: Sequence[Change],
        audit: Sequence[AuditEntry],
        messages: Sequence[OutgoingMessage] = (),
    ) -> None:
        with self._lock:
            if batch.batch_id in self._batches:
                raise ConflictError(batch_exists(batch.batch_id))
            require_free(claimants(changes), self._lines.get)
            self._batches[batch.batch_id] = batch
            for change in changes:
                self._changes[change.change_id] = change
                self._by_batch[batch.batch_id].append(change.change_id)
                self._index(holding(None), change)
            for entry in audit:
                self._audit[entry.subject].append(_audit_row(entry))
            self._outbox.update((m.dedup_id, m) for m in messages)

    def relay(self, queue: Queue, messages: Sequence[OutgoingMessage] | None = None) -> int:
        with self._lock:
            chosen = self._outbox.values() if messages is None else messages
            waiting = [m for m in chosen if m.dedup_id in self._outbox]
        if not waiting:
            return 0
        queue.send(waiting)
        with self._lock:
            for message in waiting:
                self._outbox.pop(message.dedup_id, None)
        return len(waiting)

    def get_batch(self, batch_id: str) -> Batch | None:
        return self._batches.get(batch_id)

    def update_batch(self, batch: Batch, expected_version: int, audit: AuditEntry | None) -> None:
        with self._lock:
            current = self._batches.get(batch.batch_id)
            if current is None or current.version != expected_version:
                raise ConflictError(batch_changed(batch.batch_id))
            require_follows(batch_subject(batch.batch_id), current.audit_seq, audit)
            self._batches[batch.batch_id] = batch
            if audit is not None:
                self._audit[audit.subject].append(_audit_row(audit))

    def count_finished(self, batch_id: str) -> Batch | None:
        with self._lock:
            batch = self._batches.get(batch_id)
            if batch is None:
                return None
            after = evolve_batch(batch, terminal=batch.terminal + 1, version=batch.version + 1)
            self._batches[batch_id] = after
            return after

    def get_change(self, change_id: str) -> Change | None:
        return self._changes.get(change_id)

    def update_change(
        self,
        change: Change,
        expected_version: int,
        audit: AuditEntry | None,
        messages: Sequence[OutgoingMessage] = (),
        *,
        unless_cancelled: bool = False,
    ) -> None:
        with self._lock:
            current = self._changes.get(change.change_id)
            if current is None or current.version != expected_version:
                raise ConflictError(change_changed(change.change_id))
            batch = self._batches.get(change.batch_id)
            if unless_cancelled and batch is not None and batch.state is BatchState.CANCELLED:
                raise BatchCancelledError(batch_cancelled(change.batch_id))
            subject = change_subject(change.change_id)
            require_follows(subject, current.audit_seq, audit)
            before = holding(current)
            require_claimable(before.line, change, self._lines.get)
            self._changes[change.change_id] = change
            self._index(before, change)
            if audit is not None:
                self._audit[subject].append(_audit_row(audit))
            self._outbox.update((m.dedup_id, m) for m in messages)

    def _index(self, before: Holding, change: Change) -> None:
        """Point the request ids at the change, let go what it held ``before`` and no longer
        holds, and point what it holds now (and its deadline, when due) at it."""
        change_id = change.change_id
        for request_id in change.request_ids:
            self._by_request[request_id] = change_id
        held = holding(change)
        if held != before:  # (most writes keep what the change holds)
            dropped = before.without(held)
            if dropped.line is not None and self._lines.get(dropped.line) == change_id:
                del self._lines[dropped.line]
            for name in dropped.names:
                if self._devices.get(name) == change_id:
                    del self._devices[name]
        if held.line is not None:
            self._lines[held.line] = change_id
        for name in held.names:
            self._devices[name] = change_id
        due = due_at(change)
        if due is not None:
            heapq.heappush(self._deadlines, (due, change_id))

    def changes(self, batch_id: str) -> Iterable[Change]:
        with self._lock:
            ids = list(self._by_batch.get(batch_id, ()))
        return [self._changes[i] for i in ids]

    def phase_counts(self, batch_id: str) -> dict[str, int]:
        """How many of the batch's changes are in each phase."""
        return dict(Counter(change.phase.value for change in self.changes(batch_id)))

    def changes_in(self, batch_id: str, phases: Iterable[Phase], limit: int) -> list[Change]:
        """The batch's first ``limit`` changes (in index order) in one of ``phases``."""
        wanted = set(phases)
        found = (c for c in self.changes(batch_id) if c.phase in wanted)
        return list(itertools.islice(found, limit))

    def change_for_request(self, request_id: str) -> Change | None:
        change_id = self._by_request.get(request_id)
        return self._changes.get(change_id) if change_id else None

    def line_owner(self, line: str) -> str | None:
        return self._lines.get(line)

    def line_owners(self, lines: Iterable[str]) -> dict[str, str]:
        with self._lock:
            return {line: owner for line in lines if (owner := self._lines.get(line))}

    def change_for_device(self, device_id: DeviceId) -> Change | None:
        change_id = self._devices.get(device_id)
        return self._changes.get(change_id) if change_id else None

    def batches(self, *, open_only: bool = True) -> Iterable[Batch]:
        with self._lock:
            found = list(self._batches.values())
        return [b for b in found if not open_only or is_open(b)]

    def due_changes(self, now: float, limit: int = 100) -> list[Change]:
        """Overdue changes, returned again on every call until their deadline moves."""
        with self._lock:
            due: dict[str, Change] = {}
            while self._deadlines and self._deadlines[0][0] <= now and len(due) < limit:
                deadline, change_id = heapq.heappop(self._deadlines)
                change = self._changes.get(change_id)
                if change is not None and due_at(change) == deadline:
                    due[change_id] = change
            for change in due.values():  # still due until a write moves the deadline
                heapq.heappush(self._deadlines, (due_at(change) or now, change.change_id))
            return list(due.values())

    def audit(self, subject: str) -> list[AuditEntry]:
        with self._lock:
            rows = list(self._audit.get(subject, ()))
        return [AuditEntry(*row) for row in rows]

    def audit_chains(self, batch_id: str) -> Iterator[AuditChain]:
        """The batch's chain, then its changes' in index order (a head with its entries)."""
        with self._lock:
            keys = [None, *self._by_batch.get(batch_id, ())] if batch_id in self._batches else []
        for key in keys:
            with self._lock:
                record = self._changes[key] if key else self._batches[batch_id]
                subject = change_subject(key) if key else batch_subject(batch_id)
                rows = list(self._audit.get(subject, ()))
            entries = [AuditEntry(*row) for row in rows]
            yield AuditChain(subject, record.audit_seq, record.audit_hash, entries)

    def put_inbox(self, entry: InboxEntry) -> bool:
        with self._lock:
            kept = self._inbox[entry.request_id]
            if entry.device_key in kept:
                return False
            kept[entry.device_key] = (encode_body(entry.body), entry.received_at)
            return True

    def inbox(self, request_id: str) -> list[InboxEntry]:
        with self._lock:
            kept = list(self._inbox.get(request_id, {}).items())
        return [InboxEntry(request_id, key, json.loads(body), at) for key, (body, at) in kept]


class MemoryNotifier:
    """Keeps every notification in ``published`` (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.published: list[Notification] = []

    def publish(self, notification: Notification) -> None:
        with self._lock:
            self.published.append(notification)

    def of_type(self, event_type: str) -> list[Notification]:
        with self._lock:
            return [n for n in self.published if n.event_type == event_type]
