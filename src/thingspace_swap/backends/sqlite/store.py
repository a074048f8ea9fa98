"""The store half of [SqliteBackend][thingspace_swap.backends.sqlite.backend.SqliteBackend]:
records, their audit chains, line claims, lookups and the inbox in the backend's file."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

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
    change_exists,
    change_subject,
    claimants,
    holding,
    is_open,
    require_claimable,
    require_free,
)
from ._db import Database
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
            _insert_audit(conn, audit)
            for part in parts:
                self._write_part(conn, part)

    def _write_part(self, conn: sqlite3.Connection, part: BatchPart) -> None:
        changes = part.changes
        _claim(conn, claimants(changes))
        try:
            conn.executemany(
                "INSERT INTO changes (change_id, batch_id, idx, line, live, deadline,"
                " version, audit_seq, data, phase) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [_change_row(change) for change in changes],
            )
        except sqlite3.IntegrityError:
            raise ConflictError(change_exists(_repeated(conn, changes))) from None
        _index_new(conn, changes)
        _insert_audit(conn, part.audit)
        self._queue.enqueue(conn, part.messages)

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
                (*_change_row(change)[1:], change.change_id, expected_version),
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
        return _owners(self._db.conn(), list(dict.fromkeys(lines)))

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


def _change_row(change: Change) -> tuple[Any, ...]:
    return (
        change.change_id,
        change.batch_id,
        change.index,
        change.line,
        int(not change.terminal),
        change.deadline,
        change.version,
        change.audit_seq,
        encode(change),
        change.phase.value,
    )


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


def _repeated(conn: sqlite3.Connection, changes: Sequence[Change]) -> str:
    """The id of a change a new batch repeats (the first one twice in it or already stored)."""
    seen: set[str] = set()
    for change in changes:
        if change.change_id in seen or _stored(conn, change.change_id):
            return change.change_id
        seen.add(change.change_id)
    return changes[0].change_id if changes else "?"


def _stored(conn: sqlite3.Connection, change_id: str) -> bool:
    found = conn.execute("SELECT 1 FROM changes WHERE change_id = ?", (change_id,)).fetchone()
    return found is not None


def _claim(conn: sqlite3.Connection, claims: Sequence[Change]) -> None:
    """Refuse (ConflictError) the claims of lines another change holds, read a few hundred
    lines a query (a line claimed twice in a new batch: ``claimants`` finds it within a part,
    and this, held by the first claim, across parts)."""
    owners = _owners(conn, [change.line for change in claims])
    require_free(claims, owners.get)


def _owners(conn: sqlite3.Connection, lines: Sequence[str]) -> dict[str, str]:
    owners: dict[str, str] = {}
    for start in range(0, len(lines), 500):  # (SQLite's limit on parameters is higher)
        chunk = lines[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        query = f"SELECT line, change_id FROM lines WHERE line IN ({marks})"  # noqa: S608
        owners.update((str(line), str(owner)) for line, owner in conn.execute(query, chunk))
    return owners


def _insert_audit(conn: sqlite3.Connection, audit: Sequence[AuditEntry]) -> None:
    try:
        conn.executemany(
            "INSERT INTO audit (subject, seq, data) VALUES (?, ?, ?)",
            [(entry.subject, entry.seq, encode(entry)) for entry in audit],
        )
    except sqlite3.IntegrityError:
        raise ConflictError("an audit entry of the new batch exists already") from None


def _index_new(conn: sqlite3.Connection, changes: Sequence[Change]) -> None:
    """``_index`` for the changes of a new batch (nothing to replace), a statement per table;
    a live change holds its line and its names (``holding``), written as rows here."""
    conn.executemany(
        "INSERT OR REPLACE INTO requests (request_id, change_id) VALUES (?, ?)",
        [(request_id, c.change_id) for c in changes for request_id in c.request_ids],
    )
    live = [c for c in changes if not c.terminal]
    conn.executemany(
        "INSERT OR REPLACE INTO lines (line, change_id) VALUES (?, ?)",
        sorted((c.line, c.change_id) for c in live),
    )
    conn.executemany(
        "INSERT OR REPLACE INTO devices (kind, id, change_id) VALUES (?, ?, ?)",
        sorted((kind, name, c.change_id) for c in live for kind, name in _names(c)),
    )


def _names(change: Change) -> set[tuple[str, str]]:
    """``holding(change).names`` as (kind, id): its line's MDN and every identifier it names."""
    names = {("mdn", change.line)}
    for group in (change.device_ids, change.new_ids, change.replaced):
        names.update((d.kind, d.id) for d in group)
    return names


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
