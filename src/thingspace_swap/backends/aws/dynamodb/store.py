"""The [Store][thingspace_swap.swap.ports.Store] port on one DynamoDB table
([DynamoStore][thingspace_swap.backends.aws.dynamodb.store.DynamoStore]): what each port method
means, written once over small parts: the items (``items``), the writes that go in one transaction
(``writes``), a new batch (``creation``), the outbox (``outbox``) and the calls that carry them
(``calls``).
"""

from __future__ import annotations

import functools
import itertools
import random
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError

from ....clock import Clock, SystemClock
from ....models import DeviceId
from ....swap.model import Batch, Change, Phase
from ....swap.ports import (
    AuditChain,
    AuditEntry,
    BatchCancelledError,
    ConflictError,
    InboxEntry,
    JoinedParts,
    OutgoingMessage,
    Queue,
    require_follows,
)
from ....swap.store_rules import (
    batch_cancelled,
    batch_subject,
    change_changed,
    change_subject,
    holding,
    is_due,
    is_open,
)
from .._common import Backoff, error_code
from . import outbox
from . import phases as _phases
from .calls import DynamoTable
from .creation import Creation, free_orphans, orphaned
from .items import (
    batch_key,
    change_key,
    device_pk,
    etag,
    inbox_entry,
    inbox_item,
    key_of,
    line_key,
    line_of,
    read_record,
    request_key,
    to_dynamo,
)
from .table import BATCHES_INDEX, DUE_INDEX
from .writes import Cancelled, batch_not_cancelled, batch_op, change_ops, put_new

__all__ = ["DynamoStore"]

_TRANSACTION_ITEMS = 100
_PAGE = 100
_DUE_PAGES = 10


class DynamoStore(JoinedParts):
    """The [Store][thingspace_swap.swap.ports.Store] port on one DynamoDB table (see ``items``
    for the items, ``table`` for the indexes and ``creation`` for what ``create_batch``
    guarantees).

    Args:
        client: A boto3 DynamoDB client (low level).
        table_name: A table made from
            [table_definition][thingspace_swap.backends.aws.dynamodb.table.table_definition].
        clock: Time for claims and the sleeps between retries.
        retry: Retries of throttled calls and conflicting transactions.
        rng: The jitter's random source.
        orphan_grace: Seconds after which a line claim whose batch record never appeared
            (a creation that crashed) no longer holds its line.
        transaction_items: The most items per transaction (DynamoDB allows 100; fewer makes
            batches over that size go in more, smaller steps).
        page_size: Members of a batch read per page (at most 100, a ``BatchGetItem``).
        cache_size: Changes remembered as last read or written, so an update usually needs no
            read of its own to know which claims and index items to change.
    """

    def __init__(
        self,
        client: Any,
        table_name: str,
        *,
        clock: Clock | None = None,
        retry: Backoff | None = None,
        rng: random.Random | None = None,
        orphan_grace: float = 900.0,
        transaction_items: int = _TRANSACTION_ITEMS,
        page_size: int = _PAGE,
        cache_size: int = 4096,
    ) -> None:
        if not 1 <= transaction_items <= _TRANSACTION_ITEMS:
            raise ValueError(f"transaction_items must be 1 to 100, not {transaction_items}")
        if not 1 <= page_size <= _PAGE:
            raise ValueError(f"page_size must be 1 to 100, not {page_size}")
        self.transaction_items = transaction_items
        self.page_size = page_size
        self.orphan_grace = orphan_grace
        self._table = DynamoTable(
            client,
            table_name,
            clock=clock or SystemClock(),
            retry=retry or Backoff(max_attempts=8),
            rng=rng or random.Random(),
        )
        self._cache = _ChangeCache(cache_size)

    @property
    def table_name(self) -> str:
        return self._table.name

    # Batches ------------------------------------------------------------------------------

    def create_batch(
        self,
        batch: Batch,
        changes: Sequence[Change],
        audit: Sequence[AuditEntry],
        messages: Sequence[OutgoingMessage] = (),
    ) -> None:
        """Write the batch, its changes, their first audit entries and ``messages`` (to the
        outbox), claiming each live change's line; all or nothing (see ``creation`` for
        batches over ~12 changes)."""
        creation = Creation.plan(batch, changes, audit, messages, self._table.clock.time())
        creation.write(
            self._table, transaction_items=self.transaction_items, orphan_grace=self.orphan_grace
        )
        for change in changes:
            self._cache.keep(change, etag(change))

    def get_batch(self, batch_id: str) -> Batch | None:
        item = self._table.get(batch_key(batch_id))
        return None if item is None else read_record(item, Batch)

    def update_batch(self, batch: Batch, expected_version: int, audit: AuditEntry | None) -> None:
        """Replace the batch if its stored version is ``expected_version``, appending ``audit``
        (which must follow the stored chain) in the same transaction."""
        if audit is not None and audit.subject != batch_subject(batch.batch_id):
            raise ConflictError(f"audit entry for {audit.subject} on batch {batch.batch_id}")
        self._table.write(batch_op(batch, expected_version, audit))

    def count_finished(self, batch_id: str) -> Batch | None:
        """One ``UpdateItem`` (no read): the count and the version go up in the stored record."""
        pk, sk = batch_key(batch_id)
        try:
            answer = self._table.call(
                "update_item",
                TableName=self._table.name,
                Key={"pk": {"S": pk}, "sk": {"S": sk}},
                UpdateExpression="SET #r.#t = #r.#t + :one, #r.#v = #r.#v + :one, #v = #v + :one",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames={"#r": "record", "#t": "terminal", "#v": "version"},
                ExpressionAttributeValues={":one": {"N": "1"}},
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return None
            raise
        return read_record(self._table.plain(answer["Attributes"]), Batch)

    def batches(self, *, open_only: bool = True) -> Iterable[Batch]:
        """Batches in creation order; by default those not completed (``completed_at`` None)."""
        states = ["OPEN"] if open_only else ["OPEN", "DONE"]
        keys = []
        for state in states:
            for page in self._table.query(
                IndexName=BATCHES_INDEX,
                KeyConditionExpression="batch_state = :s",
                ExpressionAttributeValues={":s": {"S": state}},
            ):
                keys += [(str(i["created_key"]), key_of(i)) for i in page]
        keys.sort()
        found = self._table.get_many([key for _, key in keys])
        batches = [read_record(found[key], Batch) for _, key in keys if key in found]
        return [b for b in batches if not open_only or is_open(b)]

    # Changes ------------------------------------------------------------------------------

    def get_change(self, change_id: str) -> Change | None:
        found = self._load(change_id)
        return None if found is None else found[0]

    def update_change(
        self,
        change: Change,
        expected_version: int,
        audit: AuditEntry | None,
        messages: Sequence[OutgoingMessage] = (),
        *,
        unless_cancelled: bool = False,
    ) -> None:
        """Replace the change if its stored version is ``expected_version``; append ``audit``,
        claim or release its line, write its request and device items and put ``messages`` in
        the outbox, in one transaction (with ``unless_cancelled``, a ``ConditionCheck`` that
        the batch is not cancelled: no read of it)."""
        subject = change_subject(change.change_id)
        known = self._cache.get(change.change_id, expected_version)
        for _ in range(3):
            found = known or self._load(change.change_id)
            known = None
            if found is None or found[0].version != expected_version:
                raise ConflictError(change_changed(change.change_id))
            before, tag = found
            require_follows(subject, before.audit_seq, audit)
            now = self._table.clock.time()
            ops = change_ops(before, tag, change, audit, now)
            ops += [outbox.message_op(m, now) for m in messages]
            if unless_cancelled:
                ops.append(batch_not_cancelled(change.batch_id))
            try:
                self._table.write(ops)
            except Cancelled as cancelled:
                if unless_cancelled and any(op is ops[-1] for op, _ in cancelled.failed):
                    raise BatchCancelledError(batch_cancelled(change.batch_id)) from None
                stored = next((old for op, old in cancelled.failed if op is ops[0]), None)
                if stored is not None:  # the record is not as read: go on from what is there
                    known = self._read(self._table.plain(stored))
                    continue
                if free_orphans(self._table, cancelled, self.orphan_grace):
                    continue
                raise
            self._cache.keep(change, ops[0].etag or "")
            return
        raise ConflictError(change_changed(change.change_id))

    def changes(self, batch_id: str) -> Iterable[Change]:
        """The batch's changes in index order, read a page at a time as they are iterated;
        each iteration reads afresh."""
        return _BatchChanges(self, batch_id)

    def _batch_changes(self, batch_id: str) -> Iterator[Change]:
        for page in self._table.query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={
                ":pk": {"S": batch_key(batch_id)[0]},
                ":prefix": {"S": "CHANGE#"},
            },
            ConsistentRead=True,
            Limit=self.page_size,
        ):
            keys = [change_key(str(item["change_id"])) for item in page]
            found = self._table.get_many(keys)
            for key in keys:
                if key in found:
                    yield self._read(found[key])[0]

    def phase_counts(self, batch_id: str) -> dict[str, int]:
        """How many of the batch's changes are in each phase, from its member items (a
        consistent ``Query`` per page of some ten thousand; see ``phases``)."""
        return _phases.phase_counts(self._table, batch_id, self._change_of)

    def changes_in(self, batch_id: str, phases: Iterable[Phase], limit: int) -> list[Change]:
        """The batch's first ``limit`` changes (in index order) in one of ``phases``: its
        members in those phases, then their records (``BatchGetItem``)."""
        return _phases.changes_in(self._table, batch_id, phases, limit, self._change_of)

    def change_for_request(self, request_id: str) -> Change | None:
        item = self._table.get(request_key(request_id))
        return None if item is None else self.get_change(str(item["change_id"]))

    def line_owner(self, line: str) -> str | None:
        return self.line_owners([line]).get(line)

    def line_owners(self, lines: Iterable[str]) -> dict[str, str]:
        """The line claims, 100 per ``BatchGetItem``; a claim whose creation never finished
        holds nothing (``orphaned``)."""
        claims = self._table.get_many([line_key(line) for line in lines])
        return {
            line_of(key): str(claim["owner"])
            for key, claim in claims.items()
            if not orphaned(self._table, claim, self.orphan_grace)
        }

    def change_for_device(self, device_id: DeviceId) -> Change | None:
        """The live change naming ``device_id`` (the latest created, should there be two)."""
        if device_id.kind == "mdn":
            owner = self.line_owner(device_id.id)
            change = self.get_change(owner) if owner else None
            if change is not None and device_id in holding(change).names:
                return change
        pages = self._table.partition(device_pk(device_id))
        ids = [str(item["change_id"]) for page in pages for item in page]
        found = [c for c in map(self.get_change, ids) if c is not None]
        live = [c for c in found if device_id in holding(c).names]
        if len(live) > 1:  # a change of a crashed creation no longer holds its line
            live = [c for c in live if self.line_owner(c.line) == c.change_id] or live
        return max(live, key=lambda c: (c.created_at, c.change_id)) if live else None

    def due_changes(self, now: float, limit: int = 100) -> list[Change]:
        """Changes not terminal whose deadline is at or before ``now``, earliest first."""
        due: list[Change] = []
        known: dict[str, bool] = {}  # batch id -> its record exists
        pages = self._table.query(
            IndexName=DUE_INDEX,
            KeyConditionExpression="due_pk = :due AND due_at <= :now",
            ExpressionAttributeValues={
                ":due": {"S": "DUE"},
                ":now": {"N": str(to_dynamo(float(now)))},
            },
            Limit=limit,
        )
        for page in itertools.islice(pages, _DUE_PAGES):
            due += self._due(page, now, known)
            if len(due) >= limit:
                break
        due.sort(key=lambda c: (c.deadline or 0.0, c.change_id))
        return due[:limit]

    def _due(
        self, page: Sequence[Mapping[str, Any]], now: float, known: dict[str, bool]
    ) -> list[Change]:
        """The changes a page of the ``due`` index points at that are still due, leaving out
        those whose batch record is missing (part of a crashed creation)."""
        keys = [key_of(item) for item in page]
        found = self._table.get_many(keys)
        changes = [self._read(found[k])[0] for k in keys if k in found]
        changes = [c for c in changes if is_due(c, now)]
        unknown = {c.batch_id for c in changes} - set(known)
        if unknown:
            there = self._table.get_many([batch_key(b) for b in unknown], projection="pk, sk")
            known.update({b: batch_key(b) in there for b in unknown})
        return [c for c in changes if known[c.batch_id]]

    # Audit, inbox and outbox --------------------------------------------------------------

    def audit(self, subject: str) -> list[AuditEntry]:
        pages = self._table.partition(f"AUDIT#{subject}")
        return [read_record(item, AuditEntry) for page in pages for item in page]

    def audit_chains(self, batch_id: str) -> Iterator[AuditChain]:
        """The batch's chain, then its changes' in index order: a page of records per
        ``BatchGetItem`` and a ``Query`` per chain. A chain that does not end at its head is
        read again with its record (a worker may have written between the two reads)."""
        batch = self.get_batch(batch_id)
        if batch is None:
            return
        yield self._chain(batch_subject(batch_id), batch, lambda: self.get_batch(batch_id))
        for change in self._batch_changes(batch_id):
            again = functools.partial(self.get_change, change.change_id)
            yield self._chain(change_subject(change.change_id), change, again)

    def _chain(
        self, subject: str, record: Batch | Change, again: Callable[[], Batch | Change | None]
    ) -> AuditChain:
        entries = self.audit(subject)
        for _ in range(2):
            if len(entries) == record.audit_seq:
                break
            record = again() or record
            entries = self.audit(subject)
        return AuditChain(subject, record.audit_seq, record.audit_hash, entries)

    def put_inbox(self, entry: InboxEntry) -> bool:
        """Keep a callback; False when the same (request id, device) was kept before."""
        try:
            self._table.write([put_new(inbox_item(entry), "inbox entry exists")])
        except ConflictError:
            return False
        return True

    def inbox(self, request_id: str) -> list[InboxEntry]:
        pages = self._table.partition(f"INBOX#{request_id}")
        entries = [inbox_entry(item) for page in pages for item in page]
        return sorted(entries, key=lambda e: e.received_at)

    def relay(self, queue: Queue, messages: Sequence[OutgoingMessage] | None = None) -> int:
        """Send outbox messages to ``queue``, then delete them: ``messages`` (just written), or
        with None every one waiting whose batch exists (see ``outbox``)."""
        return outbox.relay(self._table, queue, messages, orphan_grace=self.orphan_grace)

    # Reading changes ----------------------------------------------------------------------

    def _load(self, change_id: str) -> tuple[Change, str] | None:
        item = self._table.get(change_key(change_id))
        return None if item is None else self._read(item)

    def _change_of(self, item: Mapping[str, Any]) -> Change:
        return self._read(item)[0]

    def _read(self, item: Mapping[str, Any]) -> tuple[Change, str]:
        """The change in a plain item and the etag it was stored with (remembered)."""
        change = read_record(item, Change)
        tag = str(item.get("etag", ""))
        self._cache.keep(change, tag)
        return change, tag


class _ChangeCache:
    """The changes last read or written, with their etags (least recently used dropped)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._kept: OrderedDict[str, tuple[Change, str]] = OrderedDict()

    def get(self, change_id: str, version: int) -> tuple[Change, str] | None:
        """The change at ``version``, if that is the one kept."""
        with self._lock:
            found = self._kept.get(change_id)
        return found if found is not None and found[0].version == version else None

    def keep(self, change: Change, tag: str) -> None:
        with self._lock:
            self._kept[change.change_id] = (change, tag)
            self._kept.move_to_end(change.change_id)
            while len(self._kept) > self._size:
                self._kept.popitem(last=False)


class _BatchChanges:
    """A batch's changes, paged on every iteration."""

    def __init__(self, store: DynamoStore, batch_id: str) -> None:
        self._store = store
        self._batch_id = batch_id

    def __iter__(self) -> Iterator[Change]:
        return self._store._batch_changes(self._batch_id)
