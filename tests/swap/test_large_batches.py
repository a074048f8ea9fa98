"""Large batches: a batch's summary reads aggregates and one page of changes, the SQLite store
keeps each change's phase in an indexed column (also after an upgrade), and validation keeps
only the listed devices a request names. Counted in rows and objects, never timed."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

import thingspace_swap as ts
from thingspace_swap.backends.sqlite import SqliteBackend
from thingspace_swap.backends.sqlite import store as sqlite_store
from thingspace_swap.models import DeviceId
from thingspace_swap.swap import Change, MemoryStore, Phase
from thingspace_swap.swap.summary import summarize
from thingspace_swap.swap.thingspace import ThingSpaceFlows
from thingspace_swap.testing import ThingSpaceSimulator, VirtualClock
from thingspace_swap.testing.contract import T0, new_batch, next_change

ACCOUNT = "0000123456-00001"
LINES = [f"55{n:08d}" for n in range(1000)]


@pytest.fixture
def backend(tmp_path: Path) -> Iterable[SqliteBackend]:
    with SqliteBackend(tmp_path / "swap.db", clock=VirtualClock(T0)) as made:
        yield made


def _decoded_changes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of the changes the SQLite store decodes from now on."""
    decoded: list[str] = []
    real = sqlite_store.decode

    def counting(text: Any, cls: Any) -> Any:
        value = real(text, cls)
        if cls is Change:
            decoded.append(value.change_id)
        return value

    monkeypatch.setattr(sqlite_store, "decode", counting)
    return decoded


def test_a_summary_decodes_one_page_of_a_large_batch(
    backend: SqliteBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch, changes, audit = new_batch("b1", LINES, terminal=LINES[500:510])
    backend.store.create_batch(batch, changes, audit)
    for change in changes[:3]:
        done, entry = next_change(change, phase=Phase.COMPLETED)
        backend.store.update_change(done, change.version, entry)
    decoded = _decoded_changes(monkeypatch)
    summary = summarize(backend.store, batch, limit=20)
    assert summary.counts == {"completed": 3, "rejected": 10, "pending": 987}
    assert summary.total == 1000
    assert summary.finished == 13
    assert not summary.done
    # the first twenty not completed, in index order: the completed ones are skipped
    assert [c.index for c in summary.not_completed] == list(range(3, 23))
    assert summary.more == 997 - 20
    assert len(decoded) <= 20 * 2  # at most a page per phase listed, never the batch


class _OnlyChanges:
    """A store that offers a summary nothing but its changes (like DynamoDB's today)."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    def changes(self, batch_id: str) -> Iterable[Change]:
        return self._store.changes(batch_id)


def test_a_summary_without_a_phase_index_keeps_only_the_page() -> None:
    store = MemoryStore()
    batch, changes, audit = new_batch("b1", LINES[:300], terminal=LINES[:5])
    store.create_batch(batch, changes, audit)
    summary = summarize(_OnlyChanges(store), batch, limit=7)  # type: ignore[arg-type]
    assert summary.counts == {"rejected": 5, "pending": 295}
    assert [c.index for c in summary.not_completed] == list(range(7))
    assert summary.more == 300 - 7


def test_a_schema_1_store_gets_each_change_phase_from_its_record(tmp_path: Path) -> None:
    path = tmp_path / "swap.db"
    batch, changes, audit = new_batch("b1", LINES[:4], terminal=LINES[1:2])
    with SqliteBackend(path, clock=VirtualClock(T0)) as made:
        made.store.create_batch(batch, changes, audit)
    with sqlite3.connect(path) as db:  # back to the first schema: no phase column
        db.execute("DROP INDEX changes_phase")
        db.execute("ALTER TABLE changes DROP COLUMN phase")
        db.execute("PRAGMA user_version=1")
    with SqliteBackend(path, clock=VirtualClock(T0)) as upgraded:
        assert upgraded.store.phase_counts("b1") == {"pending": 3, "rejected": 1}
        assert upgraded.store.changes_in("b1", [Phase.REJECTED], 5) == [changes[1]]
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2


def test_validation_keeps_only_the_listed_devices_a_request_names() -> None:
    sim = ThingSpaceSimulator(seed=5)
    population = sim.populate(ACCOUNT, 300, seed=5)
    named = [d for d in population.devices if d.mdn][:3]
    wanted = {DeviceId(d.iccid, "iccid") for d in named} | {
        DeviceId("89148000000000000000", "iccid")
    }
    client = ts.ThingSpaceClient(
        ts.Credentials.from_env(sim.credentials.as_env()),
        account_name=ACCOUNT,
        base_url="https://simulator.thingspace.test",
        transport=sim.transport(),
    )
    with client:
        found = client.driver.run(ThingSpaceFlows(client).devices_named(ACCOUNT, wanted))
    assert set(found) == {DeviceId(d.iccid, "iccid") for d in named}
    assert {device.mdn for device in found.values()} == {d.mdn for d in named}
    sim.close()


def test_completing_a_batch_counts_phases_without_reading_its_changes(
    backend: SqliteBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    import attrs

    from thingspace_swap.cli.context import _offline_client
    from thingspace_swap.swap import SwapOrchestrator

    batch, changes, audit = new_batch("b1", LINES, terminal=LINES[:10])
    lost = attrs.evolve(batch, terminal=0)  # a count lost in a crash
    backend.store.create_batch(lost, changes, audit)
    orchestrator = SwapOrchestrator(
        _offline_client(), queue=backend.queue, store=backend.store, clock=VirtualClock(T0)
    )
    decoded = _decoded_changes(monkeypatch)
    orchestrator._ledger.complete_if_done("b1")  # what the sweep runs now and then
    assert orchestrator.batch("b1").terminal == 10  # corrected from the aggregate
    for change in changes[10:]:
        finished, entry = next_change(change, phase=Phase.COMPLETED)
        backend.store.update_change(finished, change.version, entry)
    orchestrator._ledger.complete_if_done("b1")
    done = orchestrator.batch("b1")
    assert done.completed_at is not None
    assert done.summary == {"rejected": 10, "completed": 990}
    assert len(decoded) == 0  # never every change: the store's counts


def _listed(number: int, iccid: object, *, state: str = "active") -> dict[str, Any]:
    return {
        "accountName": ACCOUNT,
        "deviceIds": [{"id": iccid, "kind": "ICCID"}, {"id": f"55{number:08d}", "kind": "mdn"}],
        "carrierInformations": [{"carrierName": "VZ", "servicePlan": "P1", "state": state}],
        "groupNames": ["g"],
        "extendedAttributes": [{"key": "DeviceId", "value": str(number)}],
    }


def test_the_listing_reader_keeps_the_named_devices_and_pages_on() -> None:
    from thingspace_swap._core.operations import LIST_DEVICES, Call
    from thingspace_swap.errors import DecodeError
    from thingspace_swap.models import DeviceListRequest
    from thingspace_swap.swap._listing import ListingReader

    named = DeviceId("89148000000000000001", "iccid")
    numeric = DeviceId("89148000000000000003", "iccid")
    reader = ListingReader([named, numeric])
    call = reader.first(Call(LIST_DEVICES, body=DeviceListRequest(account_name=ACCOUNT)))
    page = {
        "hasMoreData": True,
        "devices": [
            _listed(1001, named.id),
            _listed(1002, "89148000000000000002"),  # not named: only its cursor is read
            _listed(1003, 89148000000000000003),  # a number: the full model makes it text
        ],
    }
    following = reader.read(call, page)
    assert following is not None
    assert following.body.largest_device_id_seen == 1003  # type: ignore[union-attr]
    assert set(reader.found) == {named, numeric}
    device = reader.found[named]
    assert (device.mdn, device.state, device.service_plan) == ("5500001001", "active", "P1")
    assert device.group_names == []  # only what validation reads
    assert reader.found[numeric].group_names == ["g"]  # decoded by the full model
    assert reader.read(following, {"devices": [_listed(1004, "x")]}) is None  # the last page
    with pytest.raises(DecodeError):  # more promised, but no cursor to ask for it
        reader.read(following, {"hasMoreData": True, "devices": []})
    with pytest.raises(DecodeError):
        reader.read(following, {"devices": [{"deviceIds": "not a list"}]})
    with pytest.raises(DecodeError):
        reader.read(following, ["not", "a", "page"])
