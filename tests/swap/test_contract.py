"""The queue and store contracts, run against the in-memory and the SQLite backends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from thingspace_swap.backends.memory import MemoryQueue, MemoryStore
from thingspace_swap.backends.sqlite import SqliteBackend
from thingspace_swap.swap.ports import Queue, Store
from thingspace_swap.testing import VirtualClock
from thingspace_swap.testing.contract import (
    QueueContract,
    QueueFactory,
    RawQueue,
    StoreContract,
)


class TestMemoryQueue(QueueContract):
    @pytest.fixture
    def make_queue(self) -> QueueFactory:
        def make(clock: VirtualClock, **options: Any) -> RawQueue:
            return MemoryQueue(clock=clock, **options)

        return make


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store(self) -> Store:
        return MemoryStore()


class TestSqliteQueue(QueueContract):
    @pytest.fixture
    def make_queue(self, tmp_path: Path) -> Iterator[QueueFactory]:
        opened: list[SqliteBackend] = []

        def make(clock: VirtualClock, **options: Any) -> RawQueue:
            backend = SqliteBackend(tmp_path / f"queue{len(opened)}.db", clock=clock, **options)
            opened.append(backend)
            return backend.queue

        yield make
        for backend in opened:
            backend.close()


class TestSqliteStore(StoreContract):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[SqliteBackend]:
        with SqliteBackend(tmp_path / "store.db") as backend:
            yield backend

    @pytest.fixture
    def store(self, backend: SqliteBackend) -> Store:
        return backend.store

    @pytest.fixture
    def relay_queue(self, backend: SqliteBackend) -> Queue:
        return backend.queue

    def test_relay_refuses_another_queue(self, backend: SqliteBackend) -> None:
        with pytest.raises(ValueError, match="same SqliteBackend"):
            backend.store.relay(MemoryQueue())
