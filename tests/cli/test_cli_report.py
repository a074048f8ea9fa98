"""``thingspace-swap report``: daily summary and audit report from the store, and its chart."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.cli.cli_support import Cli, one_error_line

pytestmark = pytest.mark.usefixtures("clean_env")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def store(cli: Cli, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """A store holding one demo batch."""
    data = tmp_path / "data"
    summary = json.loads(cli.ok("demo", "--devices", "30", "--data", str(data), "--json").out)
    return data, summary


def test_report_as_table_csv_and_json(cli: Cli, store: tuple[Path, dict[str, Any]]) -> None:
    data, summary = store
    table = cli.ok("report", "--data", str(data))
    assert "daily processing" in table.out
    assert "batches and their audit trails" in table.out
    assert "1 of 1 batch trail(s) verified" in table.out
    report = json.loads(cli.ok("report", "--data", str(data), "--json").out)
    assert report["totals"] == summary["counts"]
    assert report["audit"] == {"batches": 1, "verified": 1, "broken": []}
    (batch,) = report["batches"]
    assert batch["batch_id"] == summary["batch_id"]
    assert batch["audit_ok"] is True
    days = list(csv.DictReader(io.StringIO(cli.ok("report", "--data", str(data), "--csv").out)))
    assert sum(int(d["changes"]) for d in days) == 30
    assert sum(int(d["completed"]) for d in days) == summary["counts"]["completed"]
    rows = cli.ok("report", "--data", str(data), "--csv", "--by", "batch").out
    assert summary["batch_id"] in rows


def test_report_period(cli: Cli, store: tuple[Path, dict[str, Any]]) -> None:
    data, _ = store
    past = json.loads(cli.ok("report", "--data", str(data), "--until", "2001-01-01", "--json").out)
    assert past["totals"] == {}
    assert past["batches"] == []
    recent = json.loads(cli.ok("report", "--data", str(data), "--since", "2d", "--json").out)
    assert sum(recent["totals"].values()) == 30
    empty = cli.ok("report", "--data", str(data), "--since", "2999-01-01")
    assert "no changes in the period" in empty.out
    bad = cli("report", "--data", str(data), "--since", "last tuesday")
    assert bad.code == 2
    assert "--since must be a date" in one_error_line(bad)
    backwards = cli("report", "--data", str(data), "--since", "2026-02-01", "--until", "2026-01-01")
    assert "--since must be before --until" in one_error_line(backwards)


def test_report_chart_writes_a_png(
    cli: Cli, store: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    data, _ = store
    chart = tmp_path / "swaps.png"
    result = cli.ok("report", "--data", str(data), "--chart", str(chart))
    assert "chart written to" in result.err
    content = chart.read_bytes()
    assert content.startswith(PNG_SIGNATURE)
    assert len(content) > 20_000
    empty = tmp_path / "empty.png"
    cli.ok("report", "--data", str(data), "--since", "2999-01-01", "--chart", str(empty))
    assert empty.read_bytes().startswith(PNG_SIGNATURE)
    wrong = cli("report", "--data", str(data), "--chart", str(tmp_path / "swaps.jpg"))
    assert wrong.code == 2
    assert "PNG" in one_error_line(wrong)
    nowhere = cli("report", "--data", str(data), "--chart", str(tmp_path / "no" / "dir.png"))
    assert nowhere.code == 1
    assert "cannot write" in one_error_line(nowhere)


def test_a_tampered_audit_trail_is_reported(cli: Cli, store: tuple[Path, dict[str, Any]]) -> None:
    data, summary = store
    with sqlite3.connect(data / "swap.db") as db:
        subject, seq, raw = db.execute(
            "SELECT subject, seq, data FROM audit WHERE subject LIKE 'change:%' LIMIT 1"
        ).fetchone()
        edited = json.loads(raw)
        edited["actor"] = "mallory"
        db.execute(
            "UPDATE audit SET data = ? WHERE subject = ? AND seq = ?",
            (json.dumps(edited), subject, seq),
        )
    db.close()
    batch = str(summary["batch_id"])
    verify = cli("audit", "verify", batch, "--data", str(data))
    assert verify.code == 1
    assert "BROKEN" in verify.out
    assert "was altered" in verify.out
    report = cli("report", "--data", str(data), "--json")
    assert report.code == 1
    assert json.loads(report.out)["audit"]["broken"] == [batch]
