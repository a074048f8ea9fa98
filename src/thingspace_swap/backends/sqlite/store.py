"""The store half of [SqliteBackend][thingspace_swap.backends.sqlite.backend.SqliteBackend]:
records, their audit chains, line claims, lookups and the inbox in the backend's file."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterable, Iterator, Sequence

from ...models import DeviceId
from ...swap._codec import decode, encode
from ...swap.model import Batch, BatchState, Change, Phase, evolve_batch
from ...swap.ports import (
    AuditChain,
    AuditEntry,
    BatchCancelledError,
    BatchPart,
    ConflictError,
    InboxEntry,
    OutgoingMessage,
    Queue,
    require_follows,
)
from ...swap.store_rules import (
    audit_exists,
    batch_cancelled,
    batch_changed,
    batch_exists,
    batch_subject,
    change_changed,
    change_subject,
    holding,
    is_open,
    require_claimable,
)
from ._db import Database
from .creation import change_row, insert_audit, owners, write_part
from .queue import SqliteQueue

__all__ = ["SqliteStore"]

_PAGE = 500  # changes read per query by SqliteStore.changes


class SqliteStore:
    """The store half of [SqliteBackend][thingspace_swap.backends.sqlite.backend.SqliteBackend]:
    records as JSON (see ``_codec``) next to the columns that index them; every write is conditional
    and carries its audit entry, and the messages written with it go into the backend's queue in the
    same transaction."""

    def __init__(self, db: Database, queue: SqliteQueue) -> None:  # SqliteBackend makes it
        self._db = db
        self._queue = queue

    def relay(self, queue: Queue, messages: Sequence[OutgoingMessage] | None = None) -> int:
        """Nothing to send: messages are enqueued with the writes. Raises ``ValueError`` if
        ``queue`` is not this backend's queue (those messages would never reach it)."""
        if queue is not self._queue:
            raise ValueError(
                "a SqliteStore enqueues its messages in its own file's queue:"
                " use the queue of the same SqliteBackend (backend.queue)"
            )
        return 0

    # batches -------------------------------------------------------------------------------

    def create_batch(
        self,
        batch: Batch,
        changes: Sequence[Change],
        audit: Sequence[AuditEntry],
        messages: Sequence[OutgoingMessage] = (),
    ) -> None:
        self.create_batch_in_parts(batch, (), [BatchPart(changes, audit, messages)])

    def create_batch_in_parts(
        self, batch: Batch, audit: Sequence[AuditEntry], parts: Iterable[BatchPart]
    ) -> None:
        """One transaction, the parts written as they come (so only one is held at a time):
        the batch exists, with all its changes, or nothing of it does."""
        with self._db.write() as conn:
            if conn.execute(
                "SELECT 1 FROM batches WHERE batch_id = ?", (batch.batch_id,)
            ).fetchone():
                raise ConflictError(batch_exists(batch.batch_id))
            conn.execute(
                "INSERT INTO batches (batch_id, open, version, audit_seq, data)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    batch.batch_id,
                    int(is_open(batch)),
                    batch.version,
                    batch.audit_seq,
                    encode(batch),
                ),
            )
            insert_audit(conn, audit)
            for part in parts:
                write_part(conn, self._queue, part)

    def get_batch(self, batch_id: str) -> Batch | None:
        row = (
            self._db.conn()
            .execute("SELECT data FROM batches WHERE batch_id = ?", (batch_id,))
            .fetchone()
        )
        return decode(row[0], Batch) if row else None

    def update_batch(self, batch: Batch, expected_version: int, audit: AuditEntry | None) -> None:
        with self._db.write() as conn:
            row = conn.execute(
                "SELECT version, audit_seq FROM batches WHERE batch_id = ?", (batch.batch_id,)
            ).fetchone()
            if row is None or row[0] != expected_version:
                raise ConflictError(batch_changed(batch.batch_id))
            require_follows(batch_subject(batch.batch_id), row[1], audit)
            written = conn.execute(
                "UPDATE batches SET open = ?, version = ?, audit_seq = ?, data = ?"
                " WHERE batch_id = ? AND version = ?",
                (
                    int(is_open(batch)),
                    batch.version,
                    batch.audit_seq,
                    encode(batch),
                    batch.batch_id,
                    expected_version,
                ),
            )
            if written.rowcount != 1:
                raise ConflictError(batch_changed(batch.batch_id))
            if audit is not None:
                _append(conn, audit)

    def count_finished(self, batch_id: str) -> Batch | None:
        with self._db.write() as conn:
            row = conn.execute(
                "SELECT data FROM batches WHERE batch_id = ?", (batch_id,)
            ).fetchone()
            if row is None:
                return None
            batch = decode(row[0], Batch)
            after = evolve_batch(batch, terminal=batch.terminal + 1, version=batch.version + 1)
            conn.execute(
                "UPDATE batches SET version = ?, data = ? WHERE batch_id = ?",
                (after.version, encode(after), batch_id),
            )
            return after

    def batches(self, *, open_only: bool = True) -> Iterable[Batch]:
        """Batches in creation order; by default those not completed (``completed_at`` None)."""
        conn = self._db.conn()
        if open_only:
            rows = conn.execute("SELECT data FROM batches WHERE open = 1 ORDER BY rowid")
        else:
            rows = conn.execute("SELECT data FROM batches ORDER BY rowid")
        return [decode(row[0], Batch) for row in rows]

    # changes -------------------------------------------------------------------------------

    def get_change(self, change_id: str) -> Change | None:
        row = (
            self._db.conn()
            .execute("SELECT data FROM changes WHERE change_id = ?", (change_id,))
            .fetchone()
        )
        return decode(row[0], Change) if row else None

    def update_change(
        self,
        change: Change,
        expected_version: int,
        audit: AuditEntry | None,
        messages: Sequence[OutgoingMessage] = (),
        *,
        unless_cancelled: bool = False,
    ) -> None:
        with self._db.write() as conn:
            row = conn.execute(
                "SELECT version, audit_seq, live, line FROM changes WHERE change_id = ?",
                (change.change_id,),
            ).fetchone()
            if row is None or row[0] != expected_version:
                raise ConflictError(change_changed(change.change_id))
            if unless_cancelled:
                found = conn.execute(
                    "SELECT data FROM batches WHERE batch_id = ?", (change.batch_id,)
                ).fetchone()
                if found and decode(found[0], Batch).state is BatchState.CANCELLED:
                    raise BatchCancelledError(batch_cancelled(change.batch_id))
            require_follows(change_subject(change.change_id), row[1], audit)
            require_claimable(row[3] if row[2] else None, change, lambda line: _owner(conn, line))
            written = conn.execute(
                "UPDATE changes SET batch_id = ?, idx = ?, line = ?, live = ?, deadline = ?,"
                " version = ?, audit_seq = ?, data = ?, phase = ?"
                " WHERE change_id = ? AND version = ?",
                (*change_row(change)[1:], change.change_id, expected_version),
            )
            if written.rowcount != 1:
                raise ConflictError(change_changed(change.change_id))
            _index(conn, change)
            if audit is not None:
                _append(conn, audit)
            self._queue.enqueue(conn, messages)

    def changes(self, batch_id: str) -> Iterable[Change]:
        """The batch's changes in index order, read a page at a time as they are iterated (so
        a huge batch is never held in memory at once); each iteration reads afresh."""
        return _BatchChanges(self._db, batch_id)

    def phase_counts(self, batch_id: str) -> dict[str, int]:
        """How many of the batch's changes are in each phase: one aggregate over an index."""
        rows = self._db.conn().execute(
            "SELECT phase, COUNT(*) FROM changes WHERE batch_id = ? GROUP BY phase", (batch_id,)
        )
        return {str(phase): int(n) for phase, n in rows}

    def changes_in(self, batch_id: str, phases: Iterable[Phase], limit: int) -> list[Change]:
        """The batch's first ``limit`` changes (in index order) in one of ``phases``: at most
        ``limit`` rows read per phase."""
        conn = self._db.conn()
        rows: list[tuple[int, int, str]] = []
        for phase in set(phases):
            rows += conn.execute(
                "SELECT idx, rowid, data FROM changes WHERE batch_id = ? AND phase = ?"
                " ORDER BY idx, rowid LIMIT ?",
                (batch_id, phase.value, limit),
            ).fetchall()
        rows.sort(key=lambda row: (row[0], row[1]))
        return [decode(data, Change) for _, _, data in rows[:limit]]

    def change_for_request(self, request_id: str) -> Change | None:
        row = (
            self._db.conn()
            .execute(
                "SELECT c.data FROM requests r JOIN changes c ON c.change_id = r.change_id"
                " WHERE r.request_id = ?",
                (request_id,),
            )
            .fetchone()
        )
        return decode(row[0], Change) if row else None

    def line_owner(self, line: str) -> str | None:
        return _owner(self._db.conn(), line)

    def line_owners(self, lines: Iterable[str]) -> dict[str, str]:
        return owners(self._db.conn(), list(dict.fromkeys(lines)))

    def change_for_device(self, device_id: DeviceId) -> Change | None:
        row = (
            self._db.conn()
            .execute(
                "SELECT c.data FROM devices d JOIN changes c ON c.change_id = d.change_id"
                " WHERE d.kind = ? AND d.id = ?",
                (device_id.kind, device_id.id),
            )
            .fetchone()
        )
        return decode(row[0], Change) if row else None

    def due_changes(self, now: float, limit: int = 100) -> list[Change]:
        rows = self._db.conn().execute(
            "SELECT data FROM changes WHERE live = 1 AND deadline IS NOT NULL AND deadline <= ?"
            " ORDER BY deadline LIMIT ?",
            (now, limit),
        )
        return [decode(row[0], Change) for row in rows]

    # audit and inbox -----------------------------------------------------------------------

    def audit(self, subject: str) -> list[AuditEntry]:
        rows = self._db.conn().execute(
            "SELECT data FROM audit WHERE subject = ? ORDER BY seq", (subject,)
        )
        return [decode(row[0], AuditEntry) for row in rows]

    def audit_chains(self, batch_id: str) -> Iterable[AuditChain]:
        """The batch's chain, then its changes' in index order: each page of changes is one
        query joining their records' heads with their entries (so a chain is read at one
        moment, even while workers write)."""
        return _BatchAudit(self._db, batch_id)

    def put_inbox(self, entry: InboxEntry) -> bool:
        with self._db.write() as conn:
            kept = conn.execute(
                "INSERT OR IGNORE INTO inbox (request_id, device_key, data) VALUES (?, ?, ?)",
                (entry.request_id, entry.device_key, encode(entry)),
            )
            return kept.rowcount == 1

    def inbox(self, request_id: str) -> list[InboxEntry]:
        rows = self._db.conn().execute(
            "SELECT data FROM inbox WHERE request_id = ? ORDER BY pos", (request_id,)
        )
        return [decode(row[0], InboxEntry) for row in rows]


class _BatchChanges:
    """A batch's changes, paged by (index, rowid) on every iteration."""

    def __init__(self, db: Database, batch_id: str) -> None:
        self._db = db
        self._batch_id = batch_id

    def __iter__(self) -> Iterator[Change]:
        rows = (
            self._db.conn()
            .execute(
                "SELECT idx, rowid, data FROM changes WHERE batch_id = ?"
                " ORDER BY idx, rowid LIMIT ?",
                (self._batch_id, _PAGE),
            )
            .fetchall()
        )
        while rows:
            for _, _, data in rows:
                yield decode(data, Change)
            if len(rows) < _PAGE:
                return
            index, rowid = rows[-1][0], rows[-1][1]
            rows = (
                self._db.conn()
                .execute(
                    "SELECT idx, rowid, data FROM changes WHERE batch_id = ?"
                    " AND (idx, rowid) > (?, ?) ORDER BY idx, rowid LIMIT ?",
                    (self._batch_id, index, rowid, _PAGE),
                )
                .fetchall()
            )


_BATCH_CHAIN = (
    "SELECT json_extract(b.data, '$.audit_seq'), json_extract(b.data, '$.audit_hash'), a.data"
    " FROM batches b LEFT JOIN audit a ON a.subject = 'batch:' || b.batch_id"
    " WHERE b.batch_id = ? ORDER BY a.seq"
)
_CHANGE_CHAINS = (
    "SELECT c.idx, c.rid, c.change_id, json_extract(c.data, '$.audit_seq'),"
    " json_extract(c.data, '$.audit_hash'), a.data FROM"
    " (SELECT idx, rowid AS rid, change_id, data FROM changes WHERE batch_id = ?"
    "  AND (idx, rowid) > (?, ?) ORDER BY idx, rowid LIMIT ?) c"
    " LEFT JOIN audit a ON a.subject = 'change:' || c.change_id"
    " ORDER BY c.idx, c.rid, a.seq"
)


class _BatchAudit:
    """A batch's audit chains (``audit_chains``), a page of changes per query."""

    def __init__(self, db: Database, batch_id: str) -> None:
        self._db = db
        self._batch_id = batch_id

    def __iter__(self) -> Iterator[AuditChain]:
        conn = self._db.conn()
        rows = conn.execute(_BATCH_CHAIN, (self._batch_id,)).fetchall()
        if not rows:
            return
        seq, head, _ = rows[0]
        entries = [decode(data, AuditEntry) for *_, data in rows if data is not None]
        yield AuditChain(batch_subject(self._batch_id), seq, head, entries)
        after: tuple[int, int] = (-(2**62), -1)
        while True:
            rows = conn.execute(_CHANGE_CHAINS, (self._batch_id, *after, _PAGE)).fetchall()
            for (index, rowid, change_id, seq, head), group in itertools.groupby(
                rows, key=lambda row: row[:5]
            ):
                entries = [decode(row[5], AuditEntry) for row in group if row[5] is not None]
                yield AuditChain(change_subject(change_id), seq, head, entries)
                after = (index, rowid)
            if len({row[:2] for row in rows}) < _PAGE:
                return


def _owner(conn: sqlite3.Connection, line: str) -> str | None:
    row = conn.execute("SELECT change_id FROM lines WHERE line = ?", (line,)).fetchone()
    return str(row[0]) if row else None


def _append(conn: sqlite3.Connection, entry: AuditEntry) -> None:
    try:
        conn.execute(
            "INSERT INTO audit (subject, seq, data) VALUES (?, ?, ?)",
            (entry.subject, entry.seq, encode(entry)),
        )
    except sqlite3.IntegrityError:
        raise ConflictError(audit_exists(entry.subject, entry.seq)) from None


def _index(conn: sqlite3.Connection, change: Change) -> None:
    """Point the request ids at the change, and the line and the names it holds (none once
    it is terminal) instead of those it held."""
    change_id = change.change_id
    held = holding(change)
    conn.executemany(
        "INSERT OR REPLACE INTO requests (request_id, change_id) VALUES (?, ?)",
        [(request_id, change_id) for request_id in change.request_ids],
    )
    conn.execute("DELETE FROM devices WHERE change_id = ?", (change_id,))
    conn.execute("DELETE FROM lines WHERE change_id = ? AND line IS NOT ?", (change_id, held.line))
    if held.line is not None:
        conn.execute(
            "INSERT OR REPLACE INTO lines (line, change_id) VALUES (?, ?)", (held.line, change_id)
        )
    conn.executemany(
        "INSERT OR REPLACE INTO devices (kind, id, change_id) VALUES (?, ?, ?)",
        [(name.kind, name.id, change_id) for name in held.names],
    )
