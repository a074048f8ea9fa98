"""A [RateLimit][thingspace_swap.ratelimit.RateLimit] in a SQLite file:
[SqliteRateLimiter][thingspace_swap.backends.sqlite.ratelimit.SqliteRateLimiter]."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from ...clock import Clock, SystemClock
from ...errors import ConfigurationError
from ...ratelimit import SPACING
from ._db import connection_for_one_call, immediate

__all__ = ["SqliteRateLimiter"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS sends (key TEXT NOT NULL, at REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS sends_by_key ON sends (key, at)",
)


class SqliteRateLimiter:
    """At most ``rate`` requests in any ``per``-second window, for every process of one machine
    that opens the same file (workers under a supervisor, CLI runs): a sliding log of sends,
    like [RateLimiter][thingspace_swap.ratelimit.RateLimiter]'s, kept in a table.

    ```python
    from thingspace_swap.backends.sqlite import SqliteRateLimiter

    limit = SqliteRateLimiter("~/.thingspace-swap/ratelimit.db", rate=20, key=account)
    client = ThingSpaceClient(credentials, rate_limit=limit)
    ```

    Each ``acquire()`` is one ``BEGIN IMMEDIATE`` transaction: it forgets sends older than the
    window, and takes a slot only when fewer than ``rate`` remain and the latest send is about
    ``per / rate`` seconds old (sends are spread, never in bursts). Times are the wall clock
    (``clock.time()``), since a monotonic clock is not shared between processes: processes on
    one machine read the same one. The file keeps no secret; it is not synced to disk on every
    send (a crash can only forget the last sends, for one window).

    Args:
        path: The file; created (with its folder) when missing. ``~`` is expanded.
        rate: Requests per window (ThingSpace's limit for the account).
        per: The window, in seconds.
        key: Which limit: one per account (several may share a file).
        margin: Seconds a slot stays taken after its window, covering the difference in delay
            (grant to arrival at ThingSpace) of two requests a window apart; the limit grants at
            most ``rate / (per + margin)`` a second.
        clock: Time (a virtual clock in tests).
        timeout: Seconds to wait for another process's transaction.

    Raises:
        ConfigurationError: The file cannot be created.
        ValueError: ``rate`` below 1, ``per`` not positive or ``margin`` negative.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        rate: int,
        per: float = 1.0,
        key: str = "default",
        margin: float = 0.05,
        clock: Clock | None = None,
        timeout: float = 10.0,
    ) -> None:
        if rate < 1 or per <= 0 or margin < 0:
            raise ValueError("rate must be >= 1, per > 0 and margin >= 0")
        self.path = Path(path).expanduser()
        self.rate, self.per, self.key, self.margin = rate, per, key, margin
        #: Sends are at least this far apart (9/10 of ``per / rate``, so that callers waking a
        #: little late do not lower the rate): no burst leaves at once.
        self.spacing = SPACING * per / rate
        self._clock = clock or SystemClock()
        self._timeout = timeout
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                db.execute("PRAGMA journal_mode=WAL")
                for statement in _SCHEMA:
                    db.execute(statement)
        except (OSError, sqlite3.Error) as error:
            raise ConfigurationError(f"rate limit file {self.path}: {error}") from None

    def acquire(self) -> float:
        """Take a slot now and return 0, or return the seconds to wait before asking again."""
        window = self.per + self.margin
        with self._connect() as db, immediate(db):
            now = self._clock.time()
            db.execute("DELETE FROM sends WHERE key = ? AND at <= ?", (self.key, now - window))
            count, oldest, latest = db.execute(
                "SELECT COUNT(*), MIN(at), MAX(at) FROM sends WHERE key = ?", (self.key,)
            ).fetchone()
            wait = float(oldest) + window - now if count >= self.rate else 0.0
            if count:
                wait = max(wait, float(latest) + self.spacing - now)
            if wait <= 0:
                db.execute("INSERT INTO sends (key, at) VALUES (?, ?)", (self.key, now))
                return 0.0
        return max(wait, 1e-6)

    def _connect(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        # durability does not matter here: a crash only forgets the last window's sends
        return connection_for_one_call(self.path, timeout=self._timeout, synchronous="OFF")

    def __repr__(self) -> str:
        return f"SqliteRateLimiter({str(self.path)!r}, rate={self.rate}, per={self.per})"
