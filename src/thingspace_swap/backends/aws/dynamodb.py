"""The swap store on one DynamoDB table: :class:`DynamoStore` implements
:class:`~thingspace_swap.swap.ports.Store`; :func:`table_definition` describes the table (as
``CreateTable`` and CloudFormation's ``AWS::DynamoDB::Table`` take it) and :func:`create_table`
makes it.

Items (``pk`` / ``sk``, both strings):

=====================================  ===================================================
``BATCH#<batch_id>`` / ``META``        the batch: ``record`` (a map), ``version``,
                                       ``audit_seq``, ``etag``; ``batch_state`` and
                                       ``created_key`` for the ``batches`` index
``BATCH#<batch_id>`` / ``CHANGE#<index:010d>#<change_id>``
                                       the batch's members, in index order
``CHANGE#<change_id>`` / ``META``      the change: ``record``, ``version``, ``audit_seq``,
                                       ``etag``, ``batch_id``; ``due_pk``/``due_at`` while
                                       it is not terminal and has a deadline
``AUDIT#<subject>`` / ``SEQ#<seq:010d>``
                                       one audit entry, written once (``attribute_not_exists``)
``LINE#<line>`` / ``CLAIM``            the change holding the line: ``owner``, ``batch_id``,
                                       ``claimed_at``
``REQUEST#<request_id>`` / ``REQUEST``   the change that sent a request (kept for late callbacks)
``DEVICE#<kind>#<id>`` / ``CHANGE#<change_id>``
                                       a change not yet terminal naming the device (the MDN
                                       of its line is found through the line's claim)
``INBOX#<request_id>`` / ``DEVICE#<device_key>``
                                       a callback: ``record`` and its ``body`` as JSON text
``OUTBOX#<0-7>`` / ``<dedup_id>``      a queue message written with a record, until
                                       :meth:`DynamoStore.relay` has sent it: ``body``
                                       (JSON text), ``grp``, ``priority``, ``delay``,
                                       ``written_at``; ``batch_id`` when written by
                                       ``create_batch``
=====================================  ===================================================

Two global secondary indexes, both sparse and ``KEYS_ONLY``: ``batches`` (``batch_state`` =
``OPEN`` or ``DONE``, ``created_key``) lists batches, and ``due`` (``due_pk`` = ``DUE``,
``due_at``) finds changes whose deadline passed. Index reads are eventually consistent, so the
records they point at are read again (``BatchGetItem``, consistent) and checked. Everything
a callback or a worker depends on (a change by request id or device, a batch's members, line
claims) is a base-table item written in the same transaction as the change, read
consistently. ``due`` is one partition: fine for thousands of writes per second.

Writes: every record write is a ``Put`` conditional on the stored ``version`` (and on the
``etag`` the change was read with, so the index items written beside it follow from the
stored record); an audit entry goes in the same ``TransactWriteItems`` with
``attribute_not_exists`` (append-only), and so do line claims (``attribute_not_exists(pk) OR
owner = :me``), request and device items. A failed condition raises
:class:`~thingspace_swap.swap.ports.ConflictError` naming what conflicted (parsed from the
``TransactionCanceledException`` reasons). A write of the record alone is a plain conditional
``PutItem``. Leases and deadlines live in the records and are compared by the orchestrator;
nothing depends on TTL.

Numbers: records are stored as maps (from :func:`~thingspace_swap.swap._codec.unstructure`);
floats become ``Decimal(repr(x))`` (the shortest decimal that reads back as the same float, so
timestamps round-trip exactly), and numbers read back as ints when integral, else floats (the
record types turn them into their fields' types). A callback body is kept as JSON text.

Throttling (``ProvisionedThroughputExceededException``, ``ThrottlingException``,
``RequestLimitExceeded``, 5xx) and transactions cancelled only by ``TransactionConflict`` or
throttling are retried here with ``backoff.expo`` delays and full jitter (botocore does not
retry a cancelled transaction). Transactions carry a ``ClientRequestToken``, so a retry of one
that did commit is a no-op; a single ``PutItem`` retried after a timeout may report a conflict
although it was written: the caller reads the record again, as after any conflict (never the
other way round: two writers never both win).

The outbox: SQS cannot take part in a DynamoDB transaction, so a message that must follow a
write (a new batch's changes, a retried change) is written as an ``OUTBOX#`` item in the same
transaction and sent by :meth:`DynamoStore.relay`, which deletes it afterwards: by the writer
right after its write, or by the sweep (``relay`` with no messages) after a crash between the
two. Eight partitions spread the writes of a big batch. A message the creation of a batch
wrote is sent only once its batch record exists (an unfinished creation's are deleted after
``orphan_grace``).

``create_batch``: a batch whose items fit one transaction (100 items: a change takes about 6,
so some 16 changes) is written all or nothing. A bigger one is written in steps, in an order
that keeps it invisible until it is whole: first every line claim (in chunks of 100), then the
changes with their members, audit entries, request and device items, then the batch record and
its audit entry last. Until that last write, ``get_batch`` and ``batches`` do not show the
batch and ``due_changes`` skips its changes. A conflict at any step deletes what the earlier
steps wrote before :class:`ConflictError` is raised, so nothing of the batch remains. A crash
between the steps leaves claims, changes and entries without a batch record: inert, and a claim
whose batch record is still missing ``orphan_grace`` seconds after it was made is ignored by
``line_owner`` and taken over by the next claimant.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import random
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

import attrs
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from ...clock import Clock, SystemClock
from ...models import DeviceId
from ...swap._codec import CodecError, encode, structure, unstructure
from ...swap.model import TERMINAL, Batch, Change, Priority
from ...swap.ports import (
    AuditEntry,
    ConflictError,
    InboxEntry,
    OutgoingMessage,
    Queue,
    require_follows,
)
from ._common import Backoff, error_code

__all__ = ["DynamoStore", "create_table", "table_definition"]

BATCHES_INDEX = "batches"
DUE_INDEX = "due"
_TRANSACTION_ITEMS = 100
_GET_KEYS = 100
_WRITE_KEYS = 25  # a BatchWriteItem
_OUTBOX_SHARDS = 8
_PAGE = 100
_DUE_PAGES = 10
_THROTTLED = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TransactionInProgressException",
        "InternalServerError",
        "ServiceUnavailable",
    }
)
_TRANSIENT_REASONS = frozenset(
    {
        "TransactionConflict",
        "ThrottlingError",
        "ProvisionedThroughputExceeded",
        "RequestLimitExceeded",
    }
)


def table_definition() -> dict[str, Any]:
    """``KeySchema``, ``AttributeDefinitions``, ``GlobalSecondaryIndexes`` and ``BillingMode``
    of the table, as ``CreateTable`` and CloudFormation's ``AWS::DynamoDB::Table`` take them."""
    return {
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "batch_state", "AttributeType": "S"},
            {"AttributeName": "created_key", "AttributeType": "S"},
            {"AttributeName": "due_pk", "AttributeType": "S"},
            {"AttributeName": "due_at", "AttributeType": "N"},
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": BATCHES_INDEX,
                "KeySchema": [
                    {"AttributeName": "batch_state", "KeyType": "HASH"},
                    {"AttributeName": "created_key", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
            {
                "IndexName": DUE_INDEX,
                "KeySchema": [
                    {"AttributeName": "due_pk", "KeyType": "HASH"},
                    {"AttributeName": "due_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }


def create_table(dynamodb: Any, name: str, *, wait: bool = True) -> str:
    """Create the table ``name`` (see :func:`table_definition`); returns its ARN."""
    created = dynamodb.create_table(TableName=name, **table_definition())
    if wait:
        dynamodb.get_waiter("table_exists").wait(
            TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
        )
    return str(created["TableDescription"]["TableArn"])


# Conversion ---------------------------------------------------------------------------------


def to_dynamo(value: Any) -> Any:
    """JSON-ready builtins as DynamoDB takes them: floats become exact ``Decimal``s."""
    if value is None or isinstance(value, (bool, str, int, Decimal)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CodecError(f"cannot store {value} in DynamoDB")
        return Decimal(repr(value))
    if isinstance(value, Mapping):
        return {str(k): to_dynamo(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_dynamo(v) for v in value]
    raise CodecError(f"cannot store a {type(value).__name__} in DynamoDB")


def from_dynamo(value: Any) -> Any:
    """The inverse of :func:`to_dynamo`: integral numbers as ints, others as floats."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {k: from_dynamo(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [from_dynamo(v) for v in value]
    return value


def _etag(record: Batch | Change) -> str:
    return hashlib.sha256(encode(record).encode()).hexdigest()[:32]


def _hints(change: Change) -> set[DeviceId]:
    """The names a live change is found by through device items (its line's MDN is found
    through the line claim)."""
    return set(change.identifiers - {DeviceId(change.line, "mdn")})


# Write operations ---------------------------------------------------------------------------


@attrs.frozen
class _Op:
    """One item write of a transaction, and what to say (or undo) about it."""

    request: dict[str, Any]  # {"Put": {...}} or {"Delete": {...}}
    label: str
    key: tuple[str, str]
    claim_owner: str | None = None  # a line claim made for this change
    etag: str | None = None  # the record this Put writes

    def conflict(self, old: Mapping[str, Any] | None) -> str:
        if self.claim_owner is not None and old is not None:
            holder = old.get("owner", {}).get("S", "?")
            return f"{self.label} is held by change {holder}"
        return self.label


class _Cancelled(ConflictError):
    """Conditions failed: ``failed`` holds each failed operation and the item it found."""

    def __init__(self, failed: Sequence[tuple[_Op, Mapping[str, Any] | None]]) -> None:
        self.failed = list(failed)
        super().__init__("; ".join(op.conflict(old) for op, old in self.failed))


class DynamoStore:
    """The :class:`~thingspace_swap.swap.ports.Store` port on one DynamoDB table (see the
    module notes for the items, indexes and what ``create_batch`` guarantees).

    Args:
        client: A boto3 DynamoDB client (low level).
        table_name: A table made from :func:`table_definition`.
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
        if not 1 <= page_size <= _GET_KEYS:
            raise ValueError(f"page_size must be 1 to 100, not {page_size}")
        self.transaction_items = transaction_items
        self.page_size = page_size
        self._client = client
        self.table_name = table_name
        self._clock = clock or SystemClock()
        self._retry = retry or Backoff(max_attempts=8)
        self._rng = rng or random.Random()
        self.orphan_grace = orphan_grace
        self._serializer = TypeSerializer()
        self._deserializer = TypeDeserializer()
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, tuple[Change, str]] = OrderedDict()
        self._cache_size = cache_size

    # Batches ------------------------------------------------------------------------------

    def create_batch(
        self,
        batch: Batch,
        changes: Sequence[Change],
        audit: Sequence[AuditEntry],
        messages: Sequence[OutgoingMessage] = (),
    ) -> None:
        """Write the batch, its changes, their first audit entries and ``messages`` (to the
        outbox), claiming each live change's line; all or nothing (see the module notes for
        batches over ~12 changes)."""
        live = [c for c in changes if c.phase not in TERMINAL]
        if len({c.line for c in live}) != len(live):
            raise ConflictError("two changes of the batch are on the same line")
        entries: dict[str, list[AuditEntry]] = {}
        for entry in audit:
            entries.setdefault(entry.subject, []).append(entry)
        now = self._clock.time()
        claims = [self._claim(c, now) for c in live]
        groups = []
        for change in changes:
            group = [
                self._put_new(self._change_item(change), f"change {change.change_id} exists"),
                self._put_new(
                    {
                        "pk": f"BATCH#{batch.batch_id}",
                        "sk": f"CHANGE#{change.index:010d}#{change.change_id}",
                        "change_id": change.change_id,
                    },
                    f"change {change.change_id} is already in batch {batch.batch_id}",
                ),
                *self._request_items(change.request_ids, change.change_id),
            ]
            if change.phase not in TERMINAL:
                group += [self._hint(name, change.change_id) for name in _hints(change)]
            group += [self._audit_op(e) for e in entries.pop(f"change:{change.change_id}", ())]
            groups.append(group)
        groups += [[self._outbox_op(m, now, batch.batch_id)] for m in messages]
        head = [self._put_new(self._batch_item(batch), f"batch {batch.batch_id} exists")]
        head += [self._audit_op(e) for subject in list(entries) for e in entries.pop(subject)]
        everything = claims + [op for group in groups for op in group] + head
        if len(everything) <= self.transaction_items:
            self._write_freeing_orphans(everything)
        else:
            self._create_in_steps(batch, claims, groups, head)
        for change in changes:
            self._keep(change, _etag(change))

    def _create_in_steps(
        self, batch: Batch, claims: list[_Op], groups: list[list[_Op]], head: list[_Op]
    ) -> None:
        """A batch too big for one transaction: claims, then changes, then the batch record."""
        if self._get(f"BATCH#{batch.batch_id}", "META") is not None:
            raise ConflictError(f"batch {batch.batch_id} exists")
        written: list[_Op] = []
        try:
            for chunk in _pack([[claim] for claim in claims], self.transaction_items):
                self._write_freeing_orphans(chunk)
                written += chunk
            for chunk in _pack([*groups, head], self.transaction_items):
                self._write(chunk)
                written += chunk
        except Exception:
            with contextlib.suppress(Exception):  # best effort: the first error is the news
                self._undo(written)
            raise

    def get_batch(self, batch_id: str) -> Batch | None:
        item = self._get(f"BATCH#{batch_id}", "META")
        return None if item is None else self._record(item, Batch)

    def update_batch(self, batch: Batch, expected_version: int, audit: AuditEntry | None) -> None:
        """Replace the batch if its stored version is ``expected_version``, appending ``audit``
        (which must follow the stored chain) in the same transaction."""
        if audit is not None and audit.subject != f"batch:{batch.batch_id}":
            raise ConflictError(f"audit entry for {audit.subject} on batch {batch.batch_id}")
        condition = "attribute_exists(pk) AND version = :v"
        values: dict[str, Any] = {":v": expected_version}
        if audit is not None:
            condition += " AND audit_seq = :prev"
            values[":prev"] = audit.seq - 1
        etag = _etag(batch)
        ops = [
            self._put(
                self._batch_item(batch, etag),
                condition,
                values,
                label=f"batch {batch.batch_id} changed",
                etag=etag,
            )
        ]
        if audit is not None:
            ops.append(self._audit_op(audit))
        self._write(ops)

    def batches(self, *, open_only: bool = True) -> Iterable[Batch]:
        """Batches in creation order; by default those not completed (``completed_at`` None)."""
        states = ["OPEN"] if open_only else ["OPEN", "DONE"]
        keys = []
        for state in states:
            for page in self._query(
                IndexName=BATCHES_INDEX,
                KeyConditionExpression="batch_state = :s",
                ExpressionAttributeValues={":s": {"S": state}},
            ):
                keys += [(str(i["created_key"]), str(i["pk"]), str(i["sk"])) for i in page]
        keys.sort()
        found = self._get_many([(pk, sk) for _, pk, sk in keys])
        batches = [self._record(found[(pk, sk)], Batch) for _, pk, sk in keys if (pk, sk) in found]
        return [b for b in batches if not open_only or b.completed_at is None]

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
    ) -> None:
        """Replace the change if its stored version is ``expected_version``; append ``audit``,
        claim or release its line, write its request and device items and put ``messages`` in
        the outbox, in one transaction."""
        subject = f"change:{change.change_id}"
        known = self._cached(change.change_id, expected_version)
        for _ in range(3):
            found = known or self._load(change.change_id)
            known = None
            if found is None or found[0].version != expected_version:
                raise ConflictError(f"change {change.change_id} changed")
            before, etag = found
            require_follows(subject, before.audit_seq, audit)
            ops = self._change_ops(before, etag, change, audit)
            ops += [self._outbox_op(m, self._clock.time()) for m in messages]
            try:
                self._write(ops)
            except _Cancelled as cancelled:
                stored = next((old for op, old in cancelled.failed if op is ops[0]), None)
                if stored is not None:  # the record is not as read: go on from what is there
                    item = self._plain(stored)
                    known = self._change(item), str(item.get("etag", ""))
                    continue
                if self._free_orphans(cancelled):
                    continue
                raise
            self._keep(change, ops[0].etag or "")
            return
        raise ConflictError(f"change {change.change_id} changed")

    def _change_ops(
        self, before: Change, etag: str, change: Change, audit: AuditEntry | None
    ) -> list[_Op]:
        new_etag = _etag(change)
        ops = [
            self._put(
                self._change_item(change, new_etag),
                "version = :v AND etag = :e",
                {":v": before.version, ":e": etag},
                label=f"change {change.change_id} changed",
                etag=new_etag,
            )
        ]
        if audit is not None:
            ops.append(self._audit_op(audit))
        was, now = before.phase not in TERMINAL, change.phase not in TERMINAL
        if now and (not was or before.line != change.line):
            ops.append(self._claim(change, self._clock.time()))
        if was and (not now or before.line != change.line):
            ops.append(
                self._delete(
                    (f"LINE#{before.line}", "CLAIM"),
                    "attribute_not_exists(pk) OR #o = :me",
                    {":me": change.change_id},
                    names={"#o": "owner"},
                    label=f"line {before.line}",
                )
            )
        fresh = [r for r in change.request_ids if r not in before.request_ids]
        ops += self._request_items(fresh, change.change_id)
        old_names = _hints(before) if was else set()
        new_names = _hints(change) if now else set()
        ops += [self._hint(name, change.change_id) for name in new_names - old_names]
        ops += [
            self._delete((f"DEVICE#{n.kind}#{n.id}", f"CHANGE#{change.change_id}"))
            for n in old_names - new_names
        ]
        return ops

    def changes(self, batch_id: str) -> Iterable[Change]:
        """The batch's changes in index order, read a page at a time as they are iterated;
        each iteration reads afresh."""
        return _BatchChanges(self, batch_id)

    # The outbox ---------------------------------------------------------------------------

    def relay(self, queue: Queue, messages: Sequence[OutgoingMessage] | None = None) -> int:
        """Send outbox messages to ``queue``, then delete them: ``messages`` (just written), or
        with None every one waiting whose batch exists (see the module notes)."""
        if messages is not None:
            if messages:
                queue.send(list(messages))
                self._forget_outbox([m.dedup_id for m in messages])
            return len(messages)
        sent = 0
        visible: dict[str, bool] = {}
        for shard in range(_OUTBOX_SHARDS):
            for page in self._query(
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": f"OUTBOX#{shard}"}},
                ConsistentRead=True,
            ):
                ready: list[OutgoingMessage] = []
                done: list[str] = []
                for item in page:
                    batch_id = str(item.get("batch_id", ""))
                    if batch_id and batch_id not in visible:
                        visible[batch_id] = self._get(f"BATCH#{batch_id}", "META") is not None
                    if batch_id and not visible[batch_id]:
                        age = self._clock.time() - float(item.get("written_at", 0))
                        if age > self.orphan_grace:  # its batch's creation never finished
                            done.append(str(item["sk"]))
                        continue
                    ready.append(_outgoing(item))
                if ready:
                    queue.send(ready)
                    sent += len(ready)
                self._forget_outbox(done + [m.dedup_id for m in ready])
        return sent

    def _outbox_op(self, message: OutgoingMessage, now: float, batch_id: str | None = None) -> _Op:
        item: dict[str, Any] = {
            "pk": _outbox_pk(message.dedup_id),
            "sk": message.dedup_id,
            "kind": "outbox",
            "body": json.dumps(dict(message.body), separators=(",", ":"), sort_keys=True),
            "grp": message.group,
            "priority": int(message.priority),
            "delay": to_dynamo(float(message.delay)),
            "written_at": to_dynamo(float(now)),
        }
        if batch_id is not None:
            item["batch_id"] = batch_id
        return _Op(
            {"Put": self._params(item)}, f"message {message.dedup_id}", (item["pk"], item["sk"])
        )

    def _forget_outbox(self, dedup_ids: Sequence[str]) -> None:
        """Delete outbox items (``BatchWriteItem``, 25 at a time, unprocessed ones again)."""
        keys = [
            {"DeleteRequest": {"Key": {"pk": {"S": _outbox_pk(d)}, "sk": {"S": d}}}}
            for d in dict.fromkeys(dedup_ids)
        ]
        for start in range(0, len(keys), _WRITE_KEYS):
            pending = {self.table_name: keys[start : start + _WRITE_KEYS]}
            for attempt in itertools.count(1):
                answer = self._call("batch_write_item", RequestItems=pending)
                pending = answer.get("UnprocessedItems") or {}
                if not pending:
                    break
                if attempt >= self._retry.max_attempts:
                    raise RuntimeError(f"BatchWriteItem left items unprocessed {attempt} times")
                self._clock.sleep(self._retry.delay(attempt, self._rng))

    def _batch_changes(self, batch_id: str) -> Iterator[Change]:
        for page in self._query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={
                ":pk": {"S": f"BATCH#{batch_id}"},
                ":prefix": {"S": "CHANGE#"},
            },
            ConsistentRead=True,
            Limit=self.page_size,
        ):
            keys = [(f"CHANGE#{item['change_id']}", "META") for item in page]
            found = self._get_many(keys)
            for key in keys:
                if key in found:
                    yield self._change(found[key])

    def change_for_request(self, request_id: str) -> Change | None:
        item = self._get(f"REQUEST#{request_id}", "REQUEST")
        return None if item is None else self.get_change(str(item["change_id"]))

    def line_owner(self, line: str) -> str | None:
        claim = self._get(f"LINE#{line}", "CLAIM")
        if claim is None or self._orphaned(claim):
            return None
        return str(claim["owner"])

    def change_for_device(self, device_id: DeviceId) -> Change | None:
        """The live change naming ``device_id`` (the latest created, should there be two)."""
        if device_id.kind == "mdn":
            owner = self.line_owner(device_id.id)
            change = self.get_change(owner) if owner else None
            if change is not None and not change.terminal and change.names(device_id):
                return change
        ids = [
            str(item["change_id"])
            for page in self._query(
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": f"DEVICE#{device_id.kind}#{device_id.id}"}},
                ConsistentRead=True,
            )
            for item in page
        ]
        found = [c for c in map(self.get_change, ids) if c is not None]
        live = [c for c in found if not c.terminal and c.names(device_id)]
        if len(live) > 1:  # a change of a crashed creation no longer holds its line
            live = [c for c in live if self.line_owner(c.line) == c.change_id] or live
        return max(live, key=lambda c: (c.created_at, c.change_id)) if live else None

    def due_changes(self, now: float, limit: int = 100) -> list[Change]:
        """Changes not terminal whose deadline is at or before ``now``, earliest first."""
        due: list[Change] = []
        known: dict[str, bool] = {}
        pages = self._query(
            IndexName=DUE_INDEX,
            KeyConditionExpression="due_pk = :due AND due_at <= :now",
            ExpressionAttributeValues={
                ":due": {"S": "DUE"},
                ":now": {"N": str(to_dynamo(float(now)))},
            },
            Limit=limit,
        )
        for page in itertools.islice(pages, _DUE_PAGES):
            keys = [(str(item["pk"]), str(item["sk"])) for item in page]
            found = self._get_many(keys)
            changes = [self._change(found[k]) for k in keys if k in found]
            changes = [
                c
                for c in changes
                if not c.terminal and c.deadline is not None and c.deadline <= now
            ]
            unknown = {c.batch_id for c in changes} - set(known)
            if unknown:  # a change whose batch record is missing is part of a crashed creation
                there = self._get_many(
                    [(f"BATCH#{b}", "META") for b in unknown], projection="pk, sk"
                )
                known.update({b: (f"BATCH#{b}", "META") in there for b in unknown})
            due += [c for c in changes if known[c.batch_id]]
            if len(due) >= limit:
                break
        due.sort(key=lambda c: (c.deadline or 0.0, c.change_id))
        return due[:limit]

    # Audit and inbox ----------------------------------------------------------------------

    def audit(self, subject: str) -> list[AuditEntry]:
        return [
            self._record(item, AuditEntry)
            for page in self._query(
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": f"AUDIT#{subject}"}},
                ConsistentRead=True,
            )
            for item in page
        ]

    def put_inbox(self, entry: InboxEntry) -> bool:
        """Keep a callback; False when the same (request id, device) was kept before."""
        record = unstructure(entry)
        body = json.dumps(record.pop("body"), separators=(",", ":"), sort_keys=True)
        item = {
            "pk": f"INBOX#{entry.request_id}",
            "sk": f"DEVICE#{entry.device_key}",
            "record": to_dynamo(record),
            "body": body,
        }
        try:
            self._write([self._put_new(item, "inbox entry exists")])
        except ConflictError:
            return False
        return True

    def inbox(self, request_id: str) -> list[InboxEntry]:
        entries = [
            structure(
                {**from_dynamo(item["record"]), "body": json.loads(str(item["body"]))}, InboxEntry
            )
            for page in self._query(
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": f"INBOX#{request_id}"}},
                ConsistentRead=True,
            )
            for item in page
        ]
        return sorted(entries, key=lambda e: e.received_at)

    # Items --------------------------------------------------------------------------------

    def _batch_item(self, batch: Batch, etag: str | None = None) -> dict[str, Any]:
        return {
            "pk": f"BATCH#{batch.batch_id}",
            "sk": "META",
            "kind": "batch",
            "version": batch.version,
            "audit_seq": batch.audit_seq,
            "etag": etag or _etag(batch),
            "batch_state": "OPEN" if batch.completed_at is None else "DONE",
            "created_key": f"{batch.created_at:017.6f}#{batch.batch_id}",
            "record": to_dynamo(unstructure(batch)),
        }

    def _change_item(self, change: Change, etag: str | None = None) -> dict[str, Any]:
        item = {
            "pk": f"CHANGE#{change.change_id}",
            "sk": "META",
            "kind": "change",
            "batch_id": change.batch_id,
            "version": change.version,
            "audit_seq": change.audit_seq,
            "etag": etag or _etag(change),
            "record": to_dynamo(unstructure(change)),
        }
        if change.phase not in TERMINAL and change.deadline is not None:
            item["due_pk"] = "DUE"
            item["due_at"] = to_dynamo(float(change.deadline))
        return item

    def _claim(self, change: Change, now: float) -> _Op:
        line = change.line
        return _Op(
            {
                "Put": self._params(
                    {
                        "pk": f"LINE#{line}",
                        "sk": "CLAIM",
                        "owner": change.change_id,
                        "batch_id": change.batch_id,
                        "claimed_at": to_dynamo(float(now)),
                    },
                    "attribute_not_exists(pk) OR #o = :me",
                    {":me": change.change_id},
                    names={"#o": "owner"},
                )
            },
            f"line {line}",
            (f"LINE#{line}", "CLAIM"),
            claim_owner=change.change_id,
        )

    def _hint(self, name: DeviceId, change_id: str) -> _Op:
        item = {
            "pk": f"DEVICE#{name.kind}#{name.id}",
            "sk": f"CHANGE#{change_id}",
            "change_id": change_id,
        }
        return _Op({"Put": self._params(item)}, f"device {name}", (item["pk"], item["sk"]))

    def _request_items(self, request_ids: Iterable[str], change_id: str) -> list[_Op]:
        return [
            _Op(
                {
                    "Put": self._params(
                        {"pk": f"REQUEST#{r}", "sk": "REQUEST", "change_id": change_id}
                    )
                },
                f"request {r}",
                (f"REQUEST#{r}", "REQUEST"),
            )
            for r in dict.fromkeys(request_ids)
        ]

    def _audit_op(self, entry: AuditEntry) -> _Op:
        item = {
            "pk": f"AUDIT#{entry.subject}",
            "sk": f"SEQ#{entry.seq:010d}",
            "kind": "audit",
            "record": to_dynamo(unstructure(entry)),
        }
        return self._put_new(item, f"{entry.subject}: audit entry {entry.seq} exists")

    def _put_new(self, item: dict[str, Any], label: str) -> _Op:
        etag = str(item["etag"]) if "etag" in item else None
        return _Op(
            {"Put": self._params(item, "attribute_not_exists(pk)")},
            label,
            (str(item["pk"]), str(item["sk"])),
            etag=etag,
        )

    def _put(
        self,
        item: dict[str, Any],
        condition: str,
        values: Mapping[str, Any],
        *,
        label: str,
        etag: str | None = None,
    ) -> _Op:
        return _Op(
            {"Put": self._params(item, condition, values)},
            label,
            (str(item["pk"]), str(item["sk"])),
            etag=etag,
        )

    def _delete(
        self,
        key: tuple[str, str],
        condition: str | None = None,
        values: Mapping[str, Any] | None = None,
        *,
        names: Mapping[str, str] | None = None,
        label: str = "",
    ) -> _Op:
        params = self._params(None, condition, values, names=names)
        params["Key"] = {"pk": {"S": key[0]}, "sk": {"S": key[1]}}
        return _Op({"Delete": params}, label or f"item {key[0]}", key)

    def _params(
        self,
        item: Mapping[str, Any] | None,
        condition: str | None = None,
        values: Mapping[str, Any] | None = None,
        *,
        names: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"TableName": self.table_name}
        if item is not None:
            params["Item"] = {k: self._serializer.serialize(v) for k, v in item.items()}
        if condition:
            params["ConditionExpression"] = condition
            params["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        if values:
            params["ExpressionAttributeValues"] = {
                k: self._serializer.serialize(to_dynamo(v)) for k, v in values.items()
            }
        if names:
            params["ExpressionAttributeNames"] = dict(names)
        return params

    # Reading ------------------------------------------------------------------------------

    def _plain(self, item: Mapping[str, Any]) -> dict[str, Any]:
        return {k: self._deserializer.deserialize(v) for k, v in item.items()}

    def _record(self, item: Mapping[str, Any], cls: type[Any]) -> Any:
        return structure(from_dynamo(item["record"]), cls)

    def _change(self, item: Mapping[str, Any]) -> Change:
        change: Change = self._record(item, Change)
        self._keep(change, str(item.get("etag", "")))
        return change

    def _load(self, change_id: str) -> tuple[Change, str] | None:
        item = self._get(f"CHANGE#{change_id}", "META")
        if item is None:
            return None
        return self._change(item), str(item.get("etag", ""))

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        found = self._call(
            "get_item",
            TableName=self.table_name,
            Key={"pk": {"S": pk}, "sk": {"S": sk}},
            ConsistentRead=True,
        )
        item = found.get("Item")
        return None if item is None else self._plain(item)

    def _get_many(
        self, keys: Sequence[tuple[str, str]], projection: str | None = None
    ) -> dict[tuple[str, str], dict[str, Any]]:
        """The items at ``keys`` that exist (``BatchGetItem``, consistent, 100 at a time)."""
        found: dict[tuple[str, str], dict[str, Any]] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _GET_KEYS):
            request: dict[str, Any] = {
                "Keys": [
                    {"pk": {"S": pk}, "sk": {"S": sk}}
                    for pk, sk in unique[start : start + _GET_KEYS]
                ],
                "ConsistentRead": True,
            }
            if projection:
                request["ProjectionExpression"] = projection
            pending = {self.table_name: request}
            for attempt in itertools.count(1):
                answer = self._call("batch_get_item", RequestItems=pending)
                for raw in answer.get("Responses", {}).get(self.table_name, []):
                    item = self._plain(raw)
                    found[(str(item["pk"]), str(item["sk"]))] = item
                pending = answer.get("UnprocessedKeys") or {}
                if not pending:
                    break
                if attempt >= self._retry.max_attempts:
                    raise RuntimeError(f"BatchGetItem left keys unprocessed {attempt} times")
                self._clock.sleep(self._retry.delay(attempt, self._rng))
        return found

    def _query(self, **params: Any) -> Iterator[list[dict[str, Any]]]:
        """Pages of a ``Query`` (following ``LastEvaluatedKey``)."""
        params = {"TableName": self.table_name, **params}
        while True:
            page = self._call("query", **params)
            yield [self._plain(item) for item in page.get("Items", [])]
            last = page.get("LastEvaluatedKey")
            if not last:
                return
            params["ExclusiveStartKey"] = last

    # Writing ------------------------------------------------------------------------------

    def _write(self, ops: Sequence[_Op]) -> None:
        """One conditional write (``PutItem``/``DeleteItem``) or a transaction of several;
        :class:`_Cancelled` when a condition failed."""
        if len(ops) == 1:
            (kind, params), op = next(iter(ops[0].request.items())), ops[0]
            try:
                self._call("put_item" if kind == "Put" else "delete_item", **params)
            except ClientError as error:
                if error_code(error) != "ConditionalCheckFailedException":
                    raise
                raise _Cancelled([(op, error.response.get("Item"))]) from None
            return
        try:
            self._call(
                "transact_write_items",
                TransactItems=[op.request for op in ops],
                ClientRequestToken=uuid.uuid4().hex,
            )
        except ClientError as error:
            if error_code(error) != "TransactionCanceledException":
                raise
            reasons = error.response.get("CancellationReasons", [])
            failed = [
                (ops[index], reason.get("Item"))
                for index, reason in enumerate(reasons)
                if reason.get("Code") == "ConditionalCheckFailed"
            ]
            if not failed:
                raise
            raise _Cancelled(failed) from None

    def _write_freeing_orphans(self, ops: Sequence[_Op]) -> None:
        try:
            self._write(ops)
        except _Cancelled as cancelled:
            if not self._free_orphans(cancelled):
                raise
            self._write(ops)

    def _free_orphans(self, cancelled: _Cancelled) -> bool:
        """Delete the line claims in ``cancelled`` left by crashed creations; True when every
        failed condition was such a claim (so the write may be tried again)."""
        freed = True
        for op, old in cancelled.failed:
            claim = self._plain(old) if (op.claim_owner is not None and old) else None
            if claim is None or not self._orphaned(claim):
                freed = False
                continue
            # someone else may have freed or taken it meanwhile: the retry will tell
            with contextlib.suppress(_Cancelled):
                self._write(
                    [
                        self._delete(
                            op.key,
                            "#o = :o AND claimed_at = :t",
                            {":o": claim["owner"], ":t": claim["claimed_at"]},
                            names={"#o": "owner"},
                        )
                    ]
                )
        return freed

    def _orphaned(self, claim: Mapping[str, Any]) -> bool:
        claimed_at = float(claim.get("claimed_at", 0))
        if claimed_at > self._clock.time() - self.orphan_grace:
            return False
        return self._get(f"BATCH#{claim.get('batch_id', '')}", "META") is None

    def _undo(self, written: Sequence[_Op]) -> None:
        """Delete what a failed creation wrote (its claims only while they are its own)."""
        undo = [
            self._delete(op.key, "#o = :me", {":me": op.claim_owner}, names={"#o": "owner"})
            if op.claim_owner is not None
            else self._delete(op.key)
            for op in reversed(written)
        ]
        for chunk in _pack([[op] for op in undo], self.transaction_items):
            try:
                self._write(chunk)
            except _Cancelled:  # a claim changed hands meanwhile: undo the rest one by one
                for op in chunk:
                    with contextlib.suppress(_Cancelled):
                        self._write([op])

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        """A client call, retried with jittered backoff while throttled or in conflict."""
        method = getattr(self._client, operation)
        for attempt in itertools.count(1):
            try:
                result: dict[str, Any] = method(**params)
            except ClientError as error:
                if attempt >= self._retry.max_attempts or not _transient(error):
                    raise
                self._clock.sleep(self._retry.delay(attempt, self._rng))
                continue
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    # The change cache ---------------------------------------------------------------------

    def _cached(self, change_id: str, version: int) -> tuple[Change, str] | None:
        with self._lock:
            found = self._cache.get(change_id)
        return found if found is not None and found[0].version == version else None

    def _keep(self, change: Change, etag: str) -> None:
        with self._lock:
            self._cache[change.change_id] = (change, etag)
            self._cache.move_to_end(change.change_id)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def _forget(self, change_id: str) -> None:
        with self._lock:
            self._cache.pop(change_id, None)


class _BatchChanges:
    """A batch's changes, paged on every iteration."""

    def __init__(self, store: DynamoStore, batch_id: str) -> None:
        self._store = store
        self._batch_id = batch_id

    def __iter__(self) -> Iterator[Change]:
        return self._store._batch_changes(self._batch_id)


def _outbox_pk(dedup_id: str) -> str:
    shard = int(hashlib.sha256(dedup_id.encode()).hexdigest()[:8], 16) % _OUTBOX_SHARDS
    return f"OUTBOX#{shard}"


def _outgoing(item: Mapping[str, Any]) -> OutgoingMessage:
    return OutgoingMessage(
        body=json.loads(str(item["body"])),
        group=str(item["grp"]),
        dedup_id=str(item["sk"]),
        delay=float(item.get("delay", 0)),
        priority=Priority(int(item.get("priority", 0))),
    )


def _transient(error: ClientError) -> bool:
    code = error_code(error)
    if code in _THROTTLED:
        return True
    if code != "TransactionCanceledException":
        return False
    reasons = [str(r.get("Code") or "None") for r in error.response.get("CancellationReasons", [])]
    causes = {r for r in reasons if r != "None"}
    return bool(causes) and causes <= _TRANSIENT_REASONS


def _pack(groups: Sequence[Sequence[_Op]], size: int) -> list[list[_Op]]:
    """Groups of operations in transactions of at most ``size``, a group never split unless it
    is bigger than one transaction."""
    chunks: list[list[_Op]] = []
    for group in groups:
        for start in range(0, len(group), size):
            part = list(group[start : start + size])
            if chunks and len(chunks[-1]) + len(part) <= size:
                chunks[-1].extend(part)
            else:
                chunks.append(part)
    return chunks
