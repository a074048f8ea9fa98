"""The backend: a queue and a store sharing one SQLite file (see the package notes)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from ...clock import Clock, SystemClock
from ._db import Database
from .queue import SqliteQueue
from .store import SqliteStore

__all__ = ["SqliteBackend"]


class SqliteBackend:
    """A queue and a store sharing the SQLite file at ``path`` (created if missing).

    ``max_receives``, ``fifo`` and ``dedup_window`` mean what they mean for
    [MemoryQueue][thingspace_swap.backends.memory.MemoryQueue]; ``synchronous`` is ``"FULL"`` or
    ``"NORMAL"`` (see the [package notes][thingspace_swap.backends.sqlite]); ``busy_timeout`` is how
    long a write waits for another process's transaction, in seconds. Close it when done (or use
    ``with``)."""

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
        self._db = Database(location, synchronous=synchronous, busy_timeout=busy_timeout)
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
