"""A durable queue and store in one SQLite file, on the standard library's :mod:`sqlite3`.

```python
from thingspace_swap.backends.sqlite import SqliteBackend

with SqliteBackend("swap.db") as backend:
    orchestrator = SwapOrchestrator(client, queue=backend.queue, store=backend.store)
```

:class:`SqliteBackend` opens (and creates) the file; its ``queue`` (:class:`SqliteQueue`) and
``store`` (:class:`SqliteStore`) behave like :class:`~thingspace_swap.backends.memory.MemoryQueue`
and :class:`~thingspace_swap.backends.memory.MemoryStore`, and pass the same contract suite
(:mod:`thingspace_swap.swap.contract`).

Durability and concurrency:

* The file is in WAL mode. ``synchronous="FULL"`` (the default) syncs the log on every commit,
  so a committed write survives a process kill *and* a power loss or kernel crash: the intent
  recorded before a ThingSpace submission must never be lost, or the change could be submitted
  twice. ``synchronous="NORMAL"`` is faster and still survives ``kill -9`` of the process (the
  log is in the OS cache); a power loss may then undo the last commits, never corrupt the file.
* Each thread gets its own connection. Every read-modify-write runs in one ``BEGIN IMMEDIATE``
  transaction (taken under a per-process lock, so threads queue on a mutex rather than on
  SQLite's sleeping busy handler); other processes wait up to ``busy_timeout`` seconds for it.
  Plain reads run outside transactions and never block (WAL readers see the last commit).
  Any number of processes may open the same file at once; all of them should use the same
  ``fifo`` and ``max_receives``.
* Queue times (visibility, delays, deduplication window) come from ``clock.time()``, the wall
  clock, because a monotonic clock is not shared between processes. A
  :class:`~thingspace_swap.testing.VirtualClock` works in tests; processes sharing a file in
  production need roughly synchronised wall clocks.
* A connection must not cross ``fork()``: a forked child opens connections of its own and
  leaves the parent's alone.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from ...clock import Clock, SystemClock
from ...models import DeviceId
from ...swap._codec import decode, encode
from ...swap.model import TERMINAL, Batch, Change, Priority
from ...swap.ports import (
    AuditEntry,
    ConflictError,
    InboxEntry,
    OutgoingMessage,
    Queue,
    QueueStats,
    ReceivedMessage,
    decode_body,
    require_follows,
)

__all__ = ["SCHEMA_VERSION", "SqliteBackend", "SqliteQueue", "SqliteStore"]

SCHEMA_VERSION = 1

# Message states. A parked message is ready but waits behind its group's message in flight;
# it is moved back to READY when that message leaves flight (so receive never rescans it).
_READY, _DELAYED, _FLIGHT, _PARKED = 0, 1, 2, 3

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS messages (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id TEXT NOT NULL UNIQUE,
        raw TEXT NOT NULL,
        grp TEXT NOT NULL,
        priority INTEGER NOT NULL,
        sent_at REAL NOT NULL,
        state INTEGER NOT NULL,
        visible_at REAL NOT NULL,
        receive_count INTEGER NOT NULL DEFAULT 0,
        receipt TEXT UNIQUE)""",
    "CREATE INDEX IF NOT EXISTS messages_ready ON messages (priority DESC, seq) WHERE state = 0",
    "CREATE INDEX IF NOT EXISTS messages_waiting ON messages (visible_at) WHERE state IN (1, 2)",
    "CREATE INDEX IF NOT EXISTS messages_flight ON messages (grp) WHERE state = 2",
    "CREATE INDEX IF NOT EXISTS messages_parked ON messages (grp) WHERE state = 3",
    "CREATE TABLE IF NOT EXISTS dedup (dedup_id TEXT PRIMARY KEY, expires_at REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS dedup_expiry ON dedup (expires_at)",
    """CREATE TABLE IF NOT EXISTS dead (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id TEXT NOT NULL,
        raw TEXT NOT NULL,
        grp TEXT NOT NULL,
        priority INTEGER NOT NULL,
        receive_count INTEGER NOT NULL,
        reason TEXT NOT NULL,
        died_at REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS batches (
        batch_id TEXT PRIMARY KEY,
        open INTEGER NOT NULL,
        version INTEGER NOT NULL,
        audit_seq INTEGER NOT NULL,
        data TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS batches_open ON batches (open)",
    """CREATE TABLE IF NOT EXISTS changes (
        change_id TEXT PRIMARY KEY,
        batch_id TEXT NOT NULL,
        idx INTEGER NOT NULL,
        line TEXT NOT NULL,
        live INTEGER NOT NULL,
        deadline REAL,
        version INTEGER NOT NULL,
        audit_seq INTEGER NOT NULL,
        data TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS changes_batch ON changes (batch_id, idx)",
    """CREATE INDEX IF NOT EXISTS changes_due ON changes (deadline)
        WHERE live = 1 AND deadline IS NOT NULL""",
    "CREATE TABLE IF NOT EXISTS lines (line TEXT PRIMARY KEY, change_id TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS lines_change ON lines (change_id)",
    """CREATE TABLE IF NOT EXISTS devices (
        kind TEXT NOT NULL,
        id TEXT NOT NULL,
        change_id TEXT NOT NULL,
        PRIMARY KEY (kind, id)) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS devices_change ON devices (change_id)",
    """CREATE TABLE IF NOT EXISTS requests (
        request_id TEXT PRIMARY KEY, change_id TEXT NOT NULL) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS audit (
        subject TEXT NOT NULL,
        seq INTEGER NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (subject, seq)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS inbox (
        pos INTEGER PRIMARY KEY AUTOINCREMENT,
        request_id TEXT NOT NULL,
        device_key TEXT NOT NULL,
        data TEXT NOT NULL,
        UNIQUE (request_id, device_key))""",
)

_PAGE = 500  # changes read per query by SqliteStore.changes
_PAGE_RECEIVE = 100  # ready messages read per query by receive (most are usually delivered)


class _Database:
    """Per-thread connections to one file, and the write transaction."""

    def __init__(self, path: str, *, synchronous: str, busy_timeout: float) -> None:
        self.path = path
        self._synchronous = synchronous
        self._busy_timeout = busy_timeout
        self._closed = False
        self._reset()
        try:
            self._create_schema()
        except BaseException:
            self.close()
            raise

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._registry_lock = threading.Lock()
        self._connections: list[tuple[weakref.ref[threading.Thread], sqlite3.Connection]] = []

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path,
            timeout=self._busy_timeout,
            isolation_level=None,  # transactions are explicit
            check_same_thread=False,  # used by one thread; closed by close() from any thread
        )
        try:
            mode = _retry_busy(lambda: conn.execute("PRAGMA journal_mode=WAL").fetchone())
            if str(mode[0]).lower() != "wal":
                raise sqlite3.OperationalError(f"{self.path}: cannot use WAL (mode {mode[0]})")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
        except BaseException:
            conn.close()
            raise
        return conn

    def conn(self) -> sqlite3.Connection:
        """This thread's connection."""
        if self._closed:
            raise sqlite3.ProgrammingError(f"{self.path}: the backend is closed")
        if os.getpid() != self._pid:
            self._reset()  # forked: the parent's connections must not be used (or closed) here
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._registry_lock:
                alive = []
                for thread, other in self._connections:
                    owner = thread()
                    if owner is None or not owner.is_alive():
                        other.close()
                    else:
                        alive.append((thread, other))
                alive.append((weakref.ref(threading.current_thread()), conn))
                self._connections = alive
        return conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A ``BEGIN IMMEDIATE`` transaction, committed on success and rolled back on error."""
        conn = self.conn()
        with self._write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _create_schema(self) -> None:
        with self.write() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise sqlite3.DatabaseError(
                    f"{self.path} has schema {version}; this version reads {SCHEMA_VERSION}"
                )
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        with self._registry_lock:
            connections, self._connections = self._connections, []
            self._closed = True
        if os.getpid() == self._pid:
            for _, conn in connections:
                conn.close()


def _retry_busy(operation: Any, attempts: int = 50) -> Any:
    """Run ``operation``, retrying while another process holds a lock it needs (switching to
    WAL needs one that the busy timeout does not wait for)."""
    for attempt in range(attempts):
        try:
            return operation()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.01 * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


class SqliteBackend:
    """A queue and a store sharing the SQLite file at ``path`` (created if missing).

    ``max_receives``, ``fifo`` and ``dedup_window`` mean what they mean for
    :class:`~thingspace_swap.backends.memory.MemoryQueue`; ``synchronous`` is ``"FULL"`` or
    ``"NORMAL"`` (see the module notes); ``busy_timeout`` is how long a write waits for
    another process's transaction, in seconds. Close it when done (or use ``with``)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Clock | None = None,
        max_receives: int = 5,
        fifo: bool = True,
        dedup_window: float = 300.0,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        busy_timeout: float = 30.0,
    ) -> None:
        location = os.fspath(path)
        if location == ":memory:" or location.startswith("file:"):
            raise ValueError("SqliteBackend needs a file path (connections are per thread)")
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be FULL or NORMAL, not {synchronous!r}")
        self.path = Path(location)
        self._db = _Database(location, synchronous=synchronous, busy_timeout=busy_timeout)
        try:
            self.queue = SqliteQueue(
                self._db,
                clock=clock or SystemClock(),
                max_receives=max_receives,
                fifo=fifo,
                dedup_window=dedup_window,
            )
        except BaseException:
            self._db.close()
            raise
        self.store = SqliteStore(self._db, self.queue)

    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check``: ``"ok"`` for a sound file."""
        rows = self._db.conn().execute("PRAGMA integrity_check").fetchall()
        return "\n".join(str(row[0]) for row in rows)

    def close(self) -> None:
        """Close every connection; call it when no thread is using the backend any more."""
        self._db.close()

    def __enter__(self) -> SqliteBackend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# Queue --------------------------------------------------------------------------------------

_MessageRow = tuple[int, str, str, str, int, int]  # seq, id, raw, group, priority, receives


class SqliteQueue:
    """The queue half of :class:`SqliteBackend`: SQS-like delivery with visibility timeouts,
    FIFO message groups, deduplication ids, delays, priorities and a dead-letter table.

    Receipts stay valid while the message is in flight (also past its visibility timeout, until
    a receive makes it visible again); acking a stale receipt does nothing."""

    #: Like SQS, so the lifecycle takes the same paths on every backend.
    max_delay: float = 900.0

    def __init__(
        self,
        db: _Database,  # SqliteBackend makes it
        *,
        clock: Clock,
        max_receives: int = 5,
        fifo: bool = True,
        dedup_window: float = 300.0,
    ) -> None:
        self._db = db
        self._clock = clock
        self.max_receives = max_receives
        self.fifo = fifo
        self.dedup_window = dedup_window
        if not fifo:  # nothing waits behind a group without FIFO groups
            with db.write() as conn:
                conn.execute("UPDATE messages SET state = 0 WHERE state = 3")

    # sending -------------------------------------------------------------------------------

    def send(self, messages: Sequence[OutgoingMessage]) -> None:
        if not messages:
            return
        with self._db.write() as conn:
            self.enqueue(conn, messages)

    def enqueue(self, conn: sqlite3.Connection, messages: Sequence[OutgoingMessage]) -> None:
        """Send ``messages`` within the caller's write transaction on ``conn`` (the store
        writes a record and the messages that follow from it in one transaction)."""
        if messages:
            now = self._clock.time()
            conn.execute("DELETE FROM dedup WHERE expires_at <= ?", (now,))
            for message in messages:
                kept = conn.execute(
                    "INSERT OR IGNORE INTO dedup (dedup_id, expires_at) VALUES (?, ?)",
                    (message.dedup_id, now + self.dedup_window),
                )
                if kept.rowcount == 0:
                    continue  # sent within the window
                raw = json.dumps(message.body, separators=(",", ":"), sort_keys=True)
                self._put(conn, raw, message.group, message.priority, message.delay, now)

    def send_raw(self, raw: str, *, group: str = "raw", delay: float = 0.0) -> None:
        """Enqueue an arbitrary body (tests use it for poison messages)."""
        with self._db.write() as conn:
            self._put(conn, raw, group, Priority.NORMAL, delay, self._clock.time())

    def _put(
        self,
        conn: sqlite3.Connection,
        raw: str,
        group: str,
        priority: Priority,
        delay: float,
        now: float,
    ) -> None:
        conn.execute(
            "INSERT INTO messages (message_id, raw, grp, priority, sent_at, state, visible_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                str(uuid.uuid4()),
                raw,
                group,
                int(priority),
                now,
                _DELAYED if delay > 0 else _READY,
                now + delay,
            ),
        )

    # receiving -----------------------------------------------------------------------------

    def receive(
        self, max_messages: int = 10, visibility_timeout: float = 60.0
    ) -> list[ReceivedMessage]:
        if max_messages <= 0:
            return []
        with self._db.write() as conn:
            now = self._clock.time()
            self._wake(conn, now)
            out: list[ReceivedMessage] = []
            busy: dict[str, bool] = {}
            while len(out) < max_messages:
                # Every row looked at leaves the ready set (delivered, parked or buried), so
                # the next page starts where this one stopped.
                rows: list[_MessageRow] = conn.execute(
                    "SELECT seq, message_id, raw, grp, priority, receive_count FROM messages"
                    " WHERE state = 0 ORDER BY priority DESC, seq LIMIT ?",
                    (max(max_messages - len(out), _PAGE_RECEIVE),),
                ).fetchall()
                if not rows:
                    break
                for seq, message_id, raw, group, priority, count in rows:
                    if len(out) == max_messages:
                        break
                    if self.fifo and self._busy(conn, group, busy):
                        conn.execute("UPDATE messages SET state = 3 WHERE seq = ?", (seq,))
                        continue
                    count += 1
                    if count > self.max_receives:
                        reason = f"received {count - 1} times without success"
                        self._bury(conn, seq, reason, now, receive_count=count)
                        continue
                    receipt = f"{message_id}:{count}"
                    conn.execute(
                        "UPDATE messages SET state = 2, receive_count = ?, receipt = ?,"
                        " visible_at = ? WHERE seq = ?",
                        (count, receipt, now + visibility_timeout, seq),
                    )
                    busy[group] = True
                    out.append(
                        ReceivedMessage(
                            message_id=message_id,
                            receipt=receipt,
                            body=decode_body(raw),
                            raw=raw,
                            group=group,
                            receive_count=count,
                            priority=Priority(priority),
                        )
                    )
            return out

    def _busy(self, conn: sqlite3.Connection, group: str, known: dict[str, bool]) -> bool:
        if group not in known:
            known[group] = (
                conn.execute(
                    "SELECT 1 FROM messages WHERE grp = ? AND state = 2 LIMIT 1", (group,)
                ).fetchone()
                is not None
            )
        return known[group]

    def _wake(self, conn: sqlite3.Connection, now: float) -> None:
        """Delays that ended and visibility timeouts that expired make messages ready."""
        groups = [
            row[0]
            for row in conn.execute(
                "SELECT DISTINCT grp FROM messages WHERE state = 2 AND visible_at <= ?", (now,)
            )
        ]
        conn.execute(
            "UPDATE messages SET state = 0, receipt = NULL"
            " WHERE state IN (1, 2) AND visible_at <= ?",
            (now,),
        )
        for group in groups:
            self._unpark(conn, group)

    def _unpark(self, conn: sqlite3.Connection, group: str) -> None:
        if self.fifo:
            conn.execute("UPDATE messages SET state = 0 WHERE state = 3 AND grp = ?", (group,))

    def _held(self, conn: sqlite3.Connection, message: ReceivedMessage) -> tuple[int, str] | None:
        row = conn.execute(
            "SELECT seq, grp FROM messages WHERE receipt = ?", (message.receipt,)
        ).fetchone()
        return (int(row[0]), str(row[1])) if row else None

    def _bury(
        self,
        conn: sqlite3.Connection,
        seq: int,
        reason: str,
        now: float,
        *,
        receive_count: int | None = None,
    ) -> None:
        conn.execute(
            "INSERT INTO dead (message_id, raw, grp, priority, receive_count, reason, died_at)"
            " SELECT message_id, raw, grp, priority, coalesce(?, receive_count), ?, ?"
            " FROM messages WHERE seq = ?",
            (receive_count, reason, now, seq),
        )
        conn.execute("DELETE FROM messages WHERE seq = ?", (seq,))

    def ack(self, message: ReceivedMessage) -> None:
        with self._db.write() as conn:
            held = self._held(conn, message)
            if held is not None:
                conn.execute("DELETE FROM messages WHERE seq = ?", (held[0],))
                self._unpark(conn, held[1])

    def release(self, message: ReceivedMessage, delay: float = 0.0) -> None:
        with self._db.write() as conn:
            held = self._held(conn, message)
            if held is not None:
                conn.execute(
                    "UPDATE messages SET state = ?, visible_at = ?, receipt = NULL WHERE seq = ?",
                    (_DELAYED if delay > 0 else _READY, self._clock.time() + delay, held[0]),
                )
                self._unpark(conn, held[1])

    def extend(self, message: ReceivedMessage, visibility_timeout: float) -> None:
        with self._db.write() as conn:
            held = self._held(conn, message)
            if held is not None:
                conn.execute(
                    "UPDATE messages SET visible_at = ? WHERE seq = ?",
                    (self._clock.time() + visibility_timeout, held[0]),
                )

    def dead_letter(self, message: ReceivedMessage, reason: str) -> None:
        with self._db.write() as conn:
            held = self._held(conn, message)
            if held is not None:
                self._bury(conn, held[0], reason, self._clock.time())
                self._unpark(conn, held[1])

    def dead_letters(self) -> list[tuple[ReceivedMessage, str]]:
        rows = self._db.conn().execute(
            "SELECT message_id, raw, grp, priority, receive_count, reason FROM dead ORDER BY seq"
        )
        return [
            (
                ReceivedMessage(
                    message_id=message_id,
                    receipt="",
                    body=decode_body(raw),
                    raw=raw,
                    group=group,
                    receive_count=count,
                    priority=Priority(priority),
                ),
                reason,
            )
            for message_id, raw, group, priority, count, reason in rows
        ]

    def stats(self) -> QueueStats:
        """Counts as of now: a message whose visibility timeout has expired counts as visible
        (MemoryQueue counts it in flight until the next receive)."""
        now = self._clock.time()
        total, in_flight, delayed, dead, oldest = (
            self._db.conn()
            .execute(
                "SELECT (SELECT count(*) FROM messages),"
                " (SELECT count(*) FROM messages WHERE state = 2 AND visible_at > ?1),"
                " (SELECT count(*) FROM messages"
                " WHERE state IN (1, 2) AND visible_at > ?1 AND state = 1),"
                " (SELECT count(*) FROM dead),"
                " (SELECT sent_at FROM messages ORDER BY seq LIMIT 1)",
                (now,),
            )
            .fetchone()
        )
        return QueueStats(
            visible=total - in_flight - delayed,
            in_flight=in_flight,
            delayed=delayed,
            dead=dead,
            oldest_age=0.0 if oldest is None else max(0.0, now - oldest),
        )


# Store --------------------------------------------------------------------------------------


class SqliteStore:
    """The store half of :class:`SqliteBackend`: records as JSON (see ``_codec``) next to the
    columns that index them; every write is conditional and carries its audit entry, and the
    messages written with it go into the backend's queue in the same transaction."""

    def __init__(self, db: _Database, queue: SqliteQueue) -> None:  # SqliteBackend makes it
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
        live = [c for c in changes if c.phase not in TERMINAL]
        if len({c.line for c in live}) != len(live):
            raise ConflictError("two changes of the batch are on the same line")
        with self._db.write() as conn:
            if conn.execute(
                "SELECT 1 FROM batches WHERE batch_id = ?", (batch.batch_id,)
            ).fetchone():
                raise ConflictError(f"batch {batch.batch_id} exists")
            taken = sorted(c.line for c in live if _owner(conn, c.line) not in (None, c.change_id))
            if taken:
                raise ConflictError(f"line(s) already have a change in flight: {taken}")
            conn.execute(
                "INSERT INTO batches (batch_id, open, version, audit_seq, data)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    batch.batch_id,
                    int(batch.completed_at is None),
                    batch.version,
                    batch.audit_seq,
                    encode(batch),
                ),
            )
            for change in changes:
                try:
                    conn.execute(
                        "INSERT INTO changes (change_id, batch_id, idx, line, live, deadline,"
                        " version, audit_seq, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        _change_row(change),
                    )
                except sqlite3.IntegrityError:
                    raise ConflictError(f"change {change.change_id} exists") from None
                _index(conn, change)
            for entry in audit:
                _append(conn, entry)
            self._queue.enqueue(conn, messages)

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
                raise ConflictError(f"batch {batch.batch_id} changed")
            require_follows(f"batch:{batch.batch_id}", row[1], audit)
            written = conn.execute(
                "UPDATE batches SET open = ?, version = ?, audit_seq = ?, data = ?"
                " WHERE batch_id = ? AND version = ?",
                (
                    int(batch.completed_at is None),
                    batch.version,
                    batch.audit_seq,
                    encode(batch),
                    batch.batch_id,
                    expected_version,
                ),
            )
            if written.rowcount != 1:
                raise ConflictError(f"batch {batch.batch_id} changed")
            if audit is not None:
                _append(conn, audit)

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
    ) -> None:
        with self._db.write() as conn:
            row = conn.execute(
                "SELECT version, audit_seq, live FROM changes WHERE change_id = ?",
                (change.change_id,),
            ).fetchone()
            if row is None or row[0] != expected_version:
                raise ConflictError(f"change {change.change_id} changed")
            require_follows(f"change:{change.change_id}", row[1], audit)
            if not row[2] and change.phase not in TERMINAL:
                owner = _owner(conn, change.line)
                if owner not in (None, change.change_id):
                    raise ConflictError(f"line {change.line} is held by {owner}")
            written = conn.execute(
                "UPDATE changes SET batch_id = ?, idx = ?, line = ?, live = ?, deadline = ?,"
                " version = ?, audit_seq = ?, data = ? WHERE change_id = ? AND version = ?",
                (*_change_row(change)[1:], change.change_id, expected_version),
            )
            if written.rowcount != 1:
                raise ConflictError(f"change {change.change_id} changed")
            _index(conn, change)
            if audit is not None:
                _append(conn, audit)
            self._queue.enqueue(conn, messages)

    def changes(self, batch_id: str) -> Iterable[Change]:
        """The batch's changes in index order, read a page at a time as they are iterated (so
        a huge batch is never held in memory at once); each iteration reads afresh."""
        return _BatchChanges(self._db, batch_id)

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

    def __init__(self, db: _Database, batch_id: str) -> None:
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


def _change_row(change: Change) -> tuple[Any, ...]:
    return (
        change.change_id,
        change.batch_id,
        change.index,
        change.line,
        int(change.phase not in TERMINAL),
        change.deadline,
        change.version,
        change.audit_seq,
        encode(change),
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
        raise ConflictError(f"{entry.subject}: audit entry {entry.seq} exists") from None


def _index(conn: sqlite3.Connection, change: Change) -> None:
    """Point the request ids, the line and the device names at the change (the line and the
    names only while it is not terminal)."""
    change_id = change.change_id
    conn.executemany(
        "INSERT OR REPLACE INTO requests (request_id, change_id) VALUES (?, ?)",
        [(request_id, change_id) for request_id in change.request_ids],
    )
    conn.execute("DELETE FROM devices WHERE change_id = ?", (change_id,))
    if change.phase in TERMINAL:
        conn.execute("DELETE FROM lines WHERE change_id = ?", (change_id,))
        return
    conn.execute("DELETE FROM lines WHERE change_id = ? AND line <> ?", (change_id, change.line))
    conn.execute(
        "INSERT OR REPLACE INTO lines (line, change_id) VALUES (?, ?)", (change.line, change_id)
    )
    names = change.identifiers
    conn.executemany(
        "INSERT OR REPLACE INTO devices (kind, id, change_id) VALUES (?, ?, ?)",
        [(name.kind, name.id, change_id) for name in names],
    )
