"""A durable queue and store in one SQLite file (:mod:`.store`), and the client's token cache in
a file of its own (:mod:`.tokens`)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .store import SCHEMA_VERSION, SqliteBackend, SqliteQueue, SqliteStore
    from .tokens import SqliteTokenCache

# Lazy, so that the token cache (.tokens) is imported without the swap side.
_WHERE = {
    "SCHEMA_VERSION": ".store",
    "SqliteBackend": ".store",
    "SqliteQueue": ".store",
    "SqliteStore": ".store",
    "SqliteTokenCache": ".tokens",
}

__all__ = ["SCHEMA_VERSION", "SqliteBackend", "SqliteQueue", "SqliteStore", "SqliteTokenCache"]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)


def __dir__() -> list[str]:
    return __all__
