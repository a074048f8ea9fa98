"""A [TokenCache][thingspace_swap.tokens.TokenCache] in a SQLite file:
[SqliteTokenCache][thingspace_swap.backends.sqlite.tokens.SqliteTokenCache]."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..._secret import Secret
from ..._token_store import RecordCodec
from ...clock import Clock, SystemClock
from ...errors import ConfigurationError
from ...tokens import AuthRecord, Tokens
from ._db import connection_for_one_call, immediate

__all__ = ["SqliteTokenCache"]

_COLUMNS = (
    "bearer",
    "bearer_expires_at",
    "session",
    "tokens_expire_at",
    "block_reason",
    "block_code",
    "block_status",
    "block_since",
    "block_by",
    "unconfirmed",
    "lease_owner",
    "lease_until",
)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS auth_records (
    key TEXT PRIMARY KEY,
    bearer TEXT,
    bearer_expires_at REAL,
    session TEXT,
    tokens_expire_at REAL,
    block_reason TEXT,
    block_code TEXT,
    block_status INTEGER,
    block_since REAL,
    block_by TEXT,
    unconfirmed INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until REAL
)
"""
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM auth_records WHERE key = ?"  # noqa: S608
_UPSERT = (
    f"INSERT OR REPLACE INTO auth_records (key, {', '.join(_COLUMNS)}) "  # noqa: S608
    f"VALUES (?, {', '.join('?' for _ in _COLUMNS)})"
)


class SqliteTokenCache:
    """Tokens and the login guard in a SQLite file, shared by the processes of one machine (CLI
    runs, workers under a supervisor).

    ```python
    from thingspace_swap import Credentials, SqliteTokenCache, ThingSpaceClient

    cache = SqliteTokenCache("~/.thingspace-swap/tokens.db")
    with ThingSpaceClient(Credentials.from_env(), token_cache=cache) as ts:
        ...
    ```

    Every change is one ``BEGIN IMMEDIATE`` transaction (read, change, write) in WAL mode, so
    processes and threads see one order of changes: one login at a time, and a block set by one
    process is seen by all. The file is created readable by its owner only (``0600``; SQLite
    gives its ``-wal`` and ``-shm`` files the same mode), and a file others can read is refused.
    Tokens are dropped when read after their expiry (the bearer's, at most an hour after they
    were stored).

    Args:
        path: The file; created (with its folder) when missing. ``~`` is expanded.
        clock: Reads the time for token expiry (the client's clock, in tests).
        encryption_key: A Fernet key: tokens are then stored encrypted.
        timeout: Seconds to wait for another process's transaction.

    Raises:
        ConfigurationError: The file cannot be created, or others may read it.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Clock | None = None,
        encryption_key: str | bytes | Secret | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.path = Path(path).expanduser()
        self._clock = clock or SystemClock()
        self._codec = RecordCodec(encryption_key)
        self._timeout = timeout
        _create_private(self.path)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(_SCHEMA)

    def get(self, key: str) -> AuthRecord:
        """The record under ``key`` (see [TokenCache][thingspace_swap.tokens.TokenCache])."""
        with self._connect() as db:
            row = db.execute(_SELECT, (key,)).fetchone()
        return AuthRecord() if row is None else self._codec.load(_fields(row), self._clock.time())

    def update(self, key: str, change: Callable[[AuthRecord], AuthRecord]) -> AuthRecord:
        """Apply ``change`` in one ``BEGIN IMMEDIATE`` transaction (see
        [TokenCache][thingspace_swap.tokens.TokenCache])."""
        with self._connect() as db, immediate(db):
            now = self._clock.time()
            row = db.execute(_SELECT, (key,)).fetchone()
            fields = _fields(row) if row is not None else {}
            current = self._codec.load(fields, now)
            updated = change(current)
            # tokens stored but past their expiry (or unreadable): write to drop them
            expired = fields.get("tokens_expire_at") is not None and current.tokens == Tokens()
            if updated != current or expired:
                values = self._codec.dump(updated, current, fields.get("tokens_expire_at"), now)
                db.execute(_UPSERT, (key, *(values[c] for c in _COLUMNS)))
        return updated

    def _connect(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return connection_for_one_call(self.path, timeout=self._timeout, synchronous="FULL")

    def __repr__(self) -> str:
        sealed = ", encrypted" if self._codec.sealed else ""
        return f"SqliteTokenCache({str(self.path)!r}{sealed})"


def _fields(row: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(_COLUMNS, row, strict=True))


def _create_private(path: Path) -> None:
    """Create ``path`` readable by its owner only, or check that an existing one is."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as error:
        raise ConfigurationError(
            f"token cache {path}: cannot create it ({error.strerror or error})"
        ) from None
    try:
        mode = os.fstat(descriptor).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            try:
                os.fchmod(descriptor, 0o600)
            except OSError:
                raise ConfigurationError(
                    f"token cache {path}: others may read it and it cannot be made private; "
                    f"run chmod 600 {path}"
                ) from None
    finally:
        os.close(descriptor)
