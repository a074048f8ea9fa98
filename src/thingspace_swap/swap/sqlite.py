"""The SQLite backend's old home: it lives in ``thingspace_swap.backends.sqlite``."""

from ..backends.sqlite import SCHEMA_VERSION, SqliteBackend, SqliteQueue, SqliteStore

__all__ = ["SCHEMA_VERSION", "SqliteBackend", "SqliteQueue", "SqliteStore"]
