"""A batch's audit verified as a stream of chains (``Store.audit_chains``), page after page of
a SQLite store: an edited, deleted or missing entry on a later page is still found."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.swap.harness import Harness
from thingspace_swap.backends.sqlite import SqliteBackend
from thingspace_swap.swap.audit import AuditReport, verify_chains
from thingspace_swap.swap.model import Batch, Change, Phase
from thingspace_swap.testing.contract import new_batch, next_change

SIZE = 1201  # three pages of changes (500 a query)


@pytest.fixture
def made(tmp_path: Path) -> Iterator[tuple[SqliteBackend, Batch, Change]]:
    """A batch of ``SIZE`` changes; the one at index 1100 (on the last page) moved on three
    times."""
    with SqliteBackend(tmp_path / "swap.db") as backend:
        batch, changes, audit = new_batch("b1", [f"55510{n:05d}" for n in range(SIZE)])
        backend.store.create_batch(batch, changes, audit)
        late = changes[1100]
        for phase in (Phase.CHECKING, Phase.SUBMITTING, Phase.AWAITING):
            written, entry = next_change(late, phase=phase)
            backend.store.update_change(written, late.version, entry)
            late = written
        yield backend, batch, late


def _verify(backend: SqliteBackend, batch: Batch) -> AuditReport:
    return verify_chains(backend.store.audit_chains(batch.batch_id), changes=batch.size)


def _sql(backend: SqliteBackend, statement: str, *args: object) -> None:
    with sqlite3.connect(backend.path) as db:
        db.execute(statement, args)
    db.close()


def test_an_intact_batch_verifies_across_pages(made: tuple[SqliteBackend, Batch, Change]) -> None:
    backend, batch, late = made
    report = _verify(backend, batch)
    assert report.ok, report.problems
    assert report.entries == 1 + SIZE + 3
    chains = list(backend.store.audit_chains(batch.batch_id))
    assert len(chains) == 1 + SIZE
    assert [c.subject for c in chains[1:4]] == [f"change:b1-c{n}" for n in range(3)]
    assert chains[1101].subject == f"change:{late.change_id}"
    assert (chains[1101].head_seq, chains[1101].head_hash) == (late.audit_seq, late.audit_hash)


def test_an_edited_entry_on_a_later_page_is_found(
    made: tuple[SqliteBackend, Batch, Change],
) -> None:
    backend, batch, late = made
    subject = f"change:{late.change_id}"
    with sqlite3.connect(backend.path) as db:
        (raw,) = db.execute(
            "SELECT data FROM audit WHERE subject = ? AND seq = 2", (subject,)
        ).fetchone()
    db.close()
    _sql(
        backend,
        "UPDATE audit SET data = ? WHERE subject = ? AND seq = 2",
        json.dumps({**json.loads(raw), "actor": "mallory"}),
        subject,
    )
    report = _verify(backend, batch)
    assert not report.ok
    assert report.problems == (f"{subject}: entry 2 was altered",)


def test_a_deleted_last_entry_on_a_later_page_is_found(
    made: tuple[SqliteBackend, Batch, Change],
) -> None:
    backend, batch, late = made
    subject = f"change:{late.change_id}"
    _sql(backend, "DELETE FROM audit WHERE subject = ? AND seq = 4", subject)
    report = _verify(backend, batch)
    assert report.problems == (f"{subject}: chain ends at 3, record says 4",)


def test_a_chain_or_a_change_gone_is_found(made: tuple[SqliteBackend, Batch, Change]) -> None:
    backend, batch, _ = made
    _sql(backend, "DELETE FROM audit WHERE subject = 'change:b1-c1200'")
    assert _verify(backend, batch).problems == ("change:b1-c1200: chain ends at 0, record says 1",)
    _sql(backend, "DELETE FROM changes WHERE change_id = 'b1-c1200'")
    report = _verify(backend, batch)
    assert report.problems == (f"the batch has {SIZE} changes, the store chains of {SIZE - 1}",)


def test_the_orchestrator_verifies_a_finished_batch_on_sqlite_and_finds_what_is_gone(
    tmp_path: Path,
) -> None:
    with SqliteBackend(tmp_path / "swap.db") as backend:
        h = Harness(queue=backend.queue, store=backend.store)
        status = h.run(h.sim_swaps(3))
        batch_id = status.batch.batch_id
        report = h.orchestrator.verify_audit(batch_id)
        assert report.ok, report.problems
        subjects = [f"batch:{batch_id}", *(f"change:{c.change_id}" for c in status.changes)]
        assert report.entries == sum(len(backend.store.audit(s)) for s in subjects) > 4
        gone = status.changes[1].change_id
        _sql(backend, "DELETE FROM audit WHERE subject = ?", f"change:{gone}")
        (problem,) = h.orchestrator.verify_audit(batch_id).problems
        assert problem.startswith(f"change:{gone}: chain ends at 0, record says ")
        _sql(backend, "DELETE FROM changes WHERE change_id = ?", gone)
        report = h.orchestrator.verify_audit(batch_id)
        assert report.problems == ("the batch has 3 changes, the store chains of 2",)
