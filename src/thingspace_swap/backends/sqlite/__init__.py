"""A durable queue and store in one SQLite file, on the standard library's ``sqlite3``.

```python
from thingspace_swap.backends.sqlite import SqliteBackend

with SqliteBackend("swap.db") as backend:
    orchestrator = SwapOrchestrator(client, queue=backend.queue, store=backend.store)
```

[SqliteBackend][thingspace_swap.backends.sqlite.backend.SqliteBackend] opens (and creates) the file;
its ``queue`` ([SqliteQueue][thingspace_swap.backends.sqlite.queue.SqliteQueue]) and ``store``
([SqliteStore][thingspace_swap.backends.sqlite.store.SqliteStore]) behave like
[MemoryQueue][thingspace_swap.backends.memory.MemoryQueue] and
[MemoryStore][thingspace_swap.backends.memory.MemoryStore], and pass the same contract suite
(``thingspace_swap.testing.contract``).
[SqliteTokenCache][thingspace_swap.backends.sqlite.tokens.SqliteTokenCache]
(``thingspace_swap.backends.sqlite.tokens``) keeps the client's tokens in a file of its own.

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
  [VirtualClock][thingspace_swap.testing.VirtualClock] works in tests; processes sharing a file in
  production need roughly synchronised wall clocks.
* A connection must not cross ``fork()``: a forked child opens connections of its own and
  leaves the parent's alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..._lazy import lazy_exports

if TYPE_CHECKING:
    from ._db import SCHEMA_VERSION
    from .backend import SqliteBackend
    from .queue import SqliteQueue
    from .ratelimit import SqliteRateLimiter
    from .store import SqliteStore
    from .tokens import SqliteTokenCache

# Lazy, so that the token cache (.tokens) is imported without the swap side.
_WHERE = {
    "SCHEMA_VERSION": "._db",
    "SqliteBackend": ".backend",
    "SqliteQueue": ".queue",
    "SqliteRateLimiter": ".ratelimit",
    "SqliteStore": ".store",
    "SqliteTokenCache": ".tokens",
}

__all__ = [
    "SCHEMA_VERSION",
    "SqliteBackend",
    "SqliteQueue",
    "SqliteRateLimiter",
    "SqliteStore",
    "SqliteTokenCache",
]


__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
