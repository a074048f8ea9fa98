"""Large batches on the command line: ``status`` shows counts and one page of changes without
reading every change, and the worker's progress reads the batch record, never a status."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import attrs
import pytest

from tests.cli.cli_support import Cli
from thingspace_swap.backends.sqlite import SqliteBackend, SqliteStore
from thingspace_swap.cli.output import ProgressBar
from thingspace_swap.cli.worker import work_batch
from thingspace_swap.swap import Batch, WorkReport
from thingspace_swap.testing import VirtualClock
from thingspace_swap.testing.contract import T0, new_batch

LINES = [f"55{n:08d}" for n in range(600)]


def _store_with_a_batch(data: Path) -> str:
    data.mkdir()
    batch, changes, audit = new_batch("b-large", LINES, terminal=LINES[:4])
    with SqliteBackend(data / "swap.db", clock=VirtualClock(T0)) as backend:
        backend.store.create_batch(batch, changes, audit)
    return batch.batch_id


def test_status_shows_counts_and_one_page_without_reading_every_change(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_env: None
) -> None:
    batch_id = _store_with_a_batch(tmp_path / "data")

    def every_change(self: SqliteStore, batch_id: str) -> Any:
        raise AssertionError("status read every change of the batch")

    monkeypatch.setattr(SqliteStore, "changes", every_change)
    shown = cli.ok("status", batch_id, "--data", tmp_path / "data")
    assert "1% done of 600: 4 rejected, 596 pending" in shown.out
    rows = [line for line in shown.out.splitlines() if re.search(r"│ (pending|rejected) +│", line)]
    assert len(rows) == 20
    assert "and 580 more not completed" in shown.out


def test_status_csv_still_lists_every_change(cli: Cli, tmp_path: Path, clean_env: None) -> None:
    batch_id = _store_with_a_batch(tmp_path / "data")
    rows = cli.ok("status", batch_id, "--csv", "--data", tmp_path / "data").out.splitlines()
    assert len(rows) == 1 + 600
    assert rows[0].startswith("change_id,line,")


@attrs.define
class _Orchestrator:
    """What ``work_batch`` calls, recorded: the batch finishes after three rounds."""

    calls: list[str] = attrs.Factory(list)
    rounds: int = 0

    def work(self, **_: Any) -> WorkReport:
        self.calls.append("work")
        self.rounds += 1
        return WorkReport(messages=1)

    def sweep(self, *, concurrency: int = 1) -> int:
        self.calls.append("sweep")
        return 0

    def batch(self, batch_id: str) -> Batch:
        self.calls.append("batch")
        done = self.rounds >= 3
        return Batch(
            batch_id=batch_id,
            account_name="a",
            size=100_000,
            actor="t",
            created_at=T0,
            terminal=100_000 if done else 40_000 * self.rounds,
            completed_at=T0 + 1 if done else None,
            summary={"completed": 100_000} if done else {},
        )

    def __getattr__(self, name: str) -> Any:  # status, summary, store...: not for progress
        raise AssertionError(f"the progress loop called {name}")


def test_worker_progress_reads_one_record_per_round() -> None:
    orchestrator = _Orchestrator()
    clock = VirtualClock(T0)
    record = work_batch(
        orchestrator,  # type: ignore[arg-type]
        "b-1",
        clock=clock,
        wait=lambda: None,
        bar=ProgressBar(None, 100_000, "processing"),
    )
    assert record.completed_at is not None
    assert orchestrator.calls == ["work", "sweep", "batch"] * 3
