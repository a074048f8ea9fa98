"""The reports' notebook reprs (escaped HTML) and their tables (records, DataFrames)."""

from __future__ import annotations

import sys

import pytest

from tests.swap.harness import Harness
from thingspace_swap.models import ChangeOption, DeviceId
from thingspace_swap.swap import (
    Batch,
    BatchStatus,
    Category,
    Change,
    ErrorInfo,
    ItemCheck,
    Phase,
    Problem,
    ReconcileReport,
    SwapItem,
    ValidationReport,
)
from thingspace_swap.swap._html import MAX_ROWS
from thingspace_swap.swap.reports import (
    AUDIT_COLUMNS,
    STATUS_COLUMNS,
    VALIDATION_COLUMNS,
    audit_dataframe,
    audit_records,
    change_html,
)

EVIL = '<script>alert("x")</script>&'
ESCAPED = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;"


def _change(index: int, **fields: object) -> Change:
    values: dict[str, object] = {
        "change_id": f"b-1.{index:06d}",
        "batch_id": "b-1",
        "index": index,
        "account_name": "0000123456-00001",
        "line": f"20255501{index:02d}",
        "device_ids": (DeviceId(f"8914800000080013970{index % 10}", "iccid"),),
        "new_ids": (DeviceId("89148000000842590078", "iccid"),),
        "replaced": (),
        "option": ChangeOption.CHANGE_ICCID,
        "created_at": 1_767_225_600.0,
    }
    values.update(fields)
    return Change(**values)  # type: ignore[arg-type]


def _status(changes: list[Change]) -> BatchStatus:
    batch = Batch("b-1", "0000123456-00001", len(changes), actor=EVIL, created_at=1_767_225_600.0)
    return BatchStatus(batch, tuple(changes))


@pytest.fixture(scope="module")
def harness_run() -> tuple[Harness, ValidationReport, BatchStatus]:
    harness = Harness(devices=12)
    items = [*harness.sim_swaps(3), SwapItem.sim_swap("89148000000800139702", "8914800000084")]
    report = harness.orchestrator.validate(harness.request(items))
    status = harness.run(items)
    return harness, report, status


def test_validation_report_html_puts_problems_first(
    harness_run: tuple[Harness, ValidationReport, BatchStatus],
) -> None:
    _, report, _ = harness_run
    html = report._repr_html_()
    assert "Validation: 3 of 4 device(s) valid" in html
    assert html.index("89148000000800139702") < html.index(report.checks[0].item.device.id)
    assert "&#10007;" in html
    assert "&#10003;" in html
    for code in report.problem_counts():
        assert code in html


def test_validation_report_escapes_what_comes_from_outside() -> None:
    item = SwapItem(DeviceId(EVIL, "iccid"), DeviceId(EVIL, "iccid"))
    check = ItemCheck(0, item, None, None, None, EVIL, (Problem("bad", EVIL),))
    report = ValidationReport(EVIL, (EVIL,), (check,), (Problem("request", EVIL),))
    for html in (report._repr_html_(), check._repr_html_()):
        assert "<script>" not in html
        assert ESCAPED in html


def test_batch_status_html_shows_progress_counts_and_the_first_changes() -> None:
    changes = [_change(i, phase=Phase.COMPLETED, completed_at=1_767_225_660.0) for i in range(30)]
    changes[3] = _change(
        3, phase=Phase.FAILED, error=ErrorInfo(Category.TERMINAL, EVIL, "DeviceNotFound")
    )
    changes[5] = _change(5, phase=Phase.AWAITING)
    html = _status(changes)._repr_html_()
    assert "<progress" in html
    assert "29 of 30 finished (96%)" in html
    assert "<td>completed</td><td>28</td>" in html
    assert "<td>failed</td><td>1</td>" in html
    assert "<td>awaiting</td><td>1</td>" in html
    assert html.index("<td>awaiting</td>") < html.index("<td>completed</td>")  # phase order
    assert f"... and {30 - MAX_ROWS} more" in html
    assert "b-1.000019" in html
    assert "b-1.000020" not in html
    assert "<script>" not in html
    assert ESCAPED in html
    assert "created 2026-01-01 00:00:00Z" in html


def test_an_empty_batch_is_complete() -> None:
    html = _status([])._repr_html_()
    assert "0 of 0 finished (100%)" in html
    assert "more" not in html


def test_change_html_and_reconcile_html_escape() -> None:
    change = _change(
        1,
        phase=Phase.MANUAL_REVIEW,
        line=EVIL,
        error=ErrorInfo(Category.MANUAL_REVIEW, EVIL),
        completed_at=1_767_225_690.0,
    )
    html = change_html(change)
    assert "manual_review" in html
    assert "duration (s)</th><td>90.0" in html
    assert "<script>" not in html
    assert ESCAPED in html
    report = ReconcileReport("b-1", 3, (("b-1.000001", EVIL),))
    html = report._repr_html_()
    assert "3 checked" in html
    assert "1 mismatch(es)" in html
    assert "<script>" not in html
    assert ESCAPED in html
    assert "mismatch" in ReconcileReport("b-1", 3)._repr_html_()


def test_dataframes_have_the_records_columns(
    harness_run: tuple[Harness, ValidationReport, BatchStatus],
) -> None:
    _harness, report, status = harness_run
    frame = report.to_dataframe()
    assert tuple(frame.columns) == VALIDATION_COLUMNS
    missing_as_none = frame.astype(object).where(frame.notna(), None)  # pandas: None -> NaN
    assert missing_as_none.to_dict("records") == report.to_records()
    frame = status.to_dataframe()
    assert tuple(frame.columns) == STATUS_COLUMNS
    assert list(frame.phase) == [c.phase.value for c in status.changes]
    assert tuple(_status([]).to_dataframe().columns) == STATUS_COLUMNS  # even when empty


def test_audit_records_and_dataframe(
    harness_run: tuple[Harness, ValidationReport, BatchStatus],
) -> None:
    harness, _, status = harness_run
    completed = status.by_phase(Phase.COMPLETED)[0]
    entries = harness.orchestrator.history(completed.change_id)
    records = audit_records(entries)
    assert [tuple(r) for r in records] == [AUDIT_COLUMNS] * len(entries)
    assert [r["seq"] for r in records] == list(range(1, len(entries) + 1))
    assert records[0]["action"] == "queued"
    assert records[-1]["after"] == "completed"
    assert all(r["subject"] == f"change:{completed.change_id}" for r in records)
    frame = audit_dataframe(entries)
    assert tuple(frame.columns) == AUDIT_COLUMNS
    assert str(frame["at"].dt.tz) == "UTC"
    assert frame["at"].iloc[0].timestamp() == entries[0].at
    assert tuple(audit_dataframe([]).columns) == AUDIT_COLUMNS


def test_without_pandas_to_dataframe_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now raises ImportError
    with pytest.raises(ImportError, match=r"thingspace-swap\[notebook\]"):
        _status([]).to_dataframe()
    with pytest.raises(ImportError, match="to_records"):
        ValidationReport("a", (), ()).to_dataframe()
