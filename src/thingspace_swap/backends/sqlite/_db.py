"""The SQLite file under [SqliteBackend][thingspace_swap.backends.sqlite.backend.SqliteBackend]:
per-thread connections in WAL mode, the write transaction, the schema and its version, and the retry
of the lock that switching to WAL needs."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["SCHEMA_VERSION", "Database"]

SCHEMA_VERSION = 2

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
        data TEXT NOT NULL,
        phase TEXT NOT NULL DEFAULT '')""",
    "CREATE INDEX IF NOT EXISTS changes_batch ON changes (batch_id, idx)",
    """CREATE INDEX IF NOT EXISTS changes_due ON changes (deadline)
        WHERE live = 1 AND deadline IS NOT NULL""",
    # a batch's counts by phase and its changes in a phase, from the index alone
    "CREATE INDEX IF NOT EXISTS changes_phase ON changes (batch_id, phase, idx)",
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


class Database:
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
            if 0 < version < 2:
                _add_phase_column(conn)
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


def _add_phase_column(conn: sqlite3.Connection) -> None:
    """Schema 1 to 2: each change's phase in a column of its own (read from its record), for
    the ``changes_phase`` index."""
    conn.execute("ALTER TABLE changes ADD COLUMN phase TEXT NOT NULL DEFAULT ''")
    conn.execute("UPDATE changes SET phase = json_extract(data, '$.phase')")


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


@contextmanager
def connection_for_one_call(
    path: str | os.PathLike[str], *, timeout: float, synchronous: str
) -> Iterator[sqlite3.Connection]:
    """A connection for one operation of a small shared file (the token cache, the rate
    limit): nothing is held between operations, so its owner survives ``fork`` and needs no
    closing."""
    db = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    try:
        db.execute(f"PRAGMA synchronous={synchronous}")
        yield db
    finally:
        db.close()


@contextmanager
def immediate(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One ``BEGIN IMMEDIATE`` transaction: committed at the end, rolled back on any error."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
