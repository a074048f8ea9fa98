"""CSV exports neutralise spreadsheet formulas (issue 13, item 8)."""

from __future__ import annotations

import csv
import io
import json

import pytest

from tests.cli.cli_support import Cli
from tests.cli.conftest import Live
from thingspace_swap.cli.output import Output, csv_cell

FORMULA = "=cmd|' /C calc'!A0"
FAST = ("--callback-timeout", "0.5", "--settle-interval", "0.3", "--poll", "0.05")
TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def test_status_and_report_csv_neutralise_formulas(cli: Cli, live: Live) -> None:
    """A formula given as the actor and as a device comes out as text in every export."""
    (line,) = live.active(1)
    spares = live.population.spare_iccids
    base = ("--base-url", live.url, "--data", str(live.data))
    result = cli(
        "swap",
        *("--iccid", line.iccid, spares[0]),
        *("--iccid", f"  {FORMULA}", spares[1]),  # rejected by validation, stored as given
        *("--actor", FORMULA),
        *base,
        *FAST,
        "--json",
    )
    assert result.code == 1, result  # not every change completed: one was rejected
    status = json.loads(result.out)
    assert status["counts"] == {"completed": 1, "rejected": 1}
    batch = status["batch_id"]
    data = ("--data", str(live.data))

    exported = cli.ok("status", batch, "--csv", *data).out
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert [r["device"] for r in rows] == [line_iccid(rows[0]), f"'{FORMULA}"]
    by_batch = cli.ok("report", "--csv", "--by", "batch", *data).out
    (batch_row,) = list(csv.DictReader(io.StringIO(by_batch)))
    assert batch_row["actor"] == f"'{FORMULA}"
    by_day = cli.ok("report", "--csv", *data).out
    for text in (exported, by_batch, by_day):
        for row in csv.reader(io.StringIO(text)):
            for cell in row:
                assert not cell.startswith(TRIGGERS), (cell, text)


def line_iccid(row: dict[str, str]) -> str:
    """The first change's device is a plain ICCID, written as it is."""
    assert row["device"].isdigit(), row
    return row["device"]


@pytest.mark.parametrize("trigger", TRIGGERS)
def test_every_trigger_gets_a_leading_quote(trigger: str) -> None:
    assert csv_cell(f"{trigger}HYPERLINK(1)") == f"'{trigger}HYPERLINK(1)"


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (-5, -5),  # a number stays a number: spreadsheets can sum the column
        (-1.5, -1.5),
        ("-5", "-5"),  # a plain number in text is read as that number and nothing else
        ("+3.25", "+3.25"),
        ("-1e-3", "-1e-3"),
        ("-1+cmd|' /C calc'!A0", "'-1+cmd|' /C calc'!A0"),
        ("-5\n", "'-5\n"),
        ("- 5", "'- 5"),
        (float("-inf"), "'-inf"),
        (None, ""),
        (True, True),
        ("plain", "plain"),
        ("a=b", "a=b"),
        ("'=already", "'=already"),
        ("", ""),
    ],
)
def test_numbers_and_plain_text_are_left_alone(value: object, written: object) -> None:
    assert csv_cell(value) == written


def test_csv_quoting_is_kept() -> None:
    out = io.StringIO()
    Output(out, io.StringIO()).csv(
        [{"a": '=HYPERLINK("x"),1', "b": "x,y", "c": 3}], ["a", "b", "c"]
    )
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows == [["a", "b", "c"], ['\'=HYPERLINK("x"),1', "x,y", "3"]]
