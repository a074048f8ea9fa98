"""The SQLite token cache's old home: it lives in ``thingspace_swap.backends.sqlite.tokens``."""

from .backends.sqlite.tokens import SqliteTokenCache

__all__ = ["SqliteTokenCache"]
