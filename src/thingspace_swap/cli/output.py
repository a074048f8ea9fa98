"""Where commands write: tables and progress through rich; JSON, CSV and errors as plain text."""

from __future__ import annotations

import csv
import json
import math
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from .errors import PROG, CliError, one_line

__all__ = ["CliError", "Output", "ProgressBar", "csv_cell", "one_line"]

#: First characters that make a spreadsheet read a cell as a formula (OWASP, "CSV Injection"),
#: and their full-width forms, which some spreadsheets (Excel in East Asian locales) also take.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
#: A plain decimal number: a spreadsheet reads it as that number, never as a formula.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def csv_cell(value: object) -> object:
    """``value`` made safe to open in a spreadsheet, for every CSV the package writes.

    Text starting with ``=``, ``+``, ``-``, ``@``, a tab, a carriage return or a full-width
    ``=``, ``+``, ``-`` or ``@`` gets a leading single quote, so that Excel, LibreOffice and
    Google Sheets show it as text instead of running it as a formula. Numbers are left alone,
    whether numbers (``-5``, ``-1.5``) or plain decimal numbers in text (``"-5"``): a spreadsheet
    reads them as that number and nothing else, and quoting them would turn them into text that
    cannot be summed. None is written as an empty cell. The csv module's quoting still applies
    (a cell holding a comma or a quote is quoted), so a value cannot start a cell of its own.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and math.isfinite(value):
        return value
    text = str(value)
    if text.startswith(_FORMULA_STARTS) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def _cell(value: object) -> Text:
    if value is None:
        return Text("-", style="dim")
    if isinstance(value, float):
        return Text(f"{value:,.1f}")
    if isinstance(value, bool):
        return Text("yes" if value else "no")
    if isinstance(value, int):
        return Text(f"{value:,}")
    return Text(str(value))  # Text: never parsed as markup


class ProgressBar:
    """A progress bar refreshed at most ten times a second (no background thread)."""

    def __init__(self, progress: Progress | None, total: int, description: str) -> None:
        self._progress = progress
        self._task = progress.add_task(description, total=total) if progress else None
        self._shown = 0.0

    def update(
        self, completed: int, description: str | None = None, *, force: bool = False
    ) -> None:
        """Show ``completed`` items done (and a new description)."""
        if self._progress is None or self._task is None:
            return
        fields: dict[str, Any] = {"completed": completed}
        if description is not None:
            fields["description"] = description
        self._progress.update(self._task, **fields)
        now = time.monotonic()
        if force or now - self._shown >= 0.1:
            self._shown = now
            self._progress.refresh()


def _console(file: TextIO, width: int | None) -> Console:
    console = Console(file=file, highlight=False, emoji=False)
    if width is not None and not console.is_terminal:
        console.width = width
    return console


class Output:
    """A command's stdout and stderr: rich for people, plain text for scripts."""

    def __init__(self, stdout: TextIO, stderr: TextIO, *, width: int | None = None) -> None:
        """``width``: of output that is not a terminal (files, pipes), where tables would
        otherwise fold at 80 columns; a terminal's own width always wins."""
        self.stdout = stdout
        self.stderr = stderr
        self.console = _console(stdout, width)
        self.err_console = _console(stderr, width)

    def print(self, text: str = "", *, style: str = "") -> None:
        """One paragraph of plain text (never parsed as markup)."""
        self.console.print(Text(text, style=style), soft_wrap=True)

    def note(self, text: str) -> None:
        """A side remark on stderr (kept out of data written to stdout)."""
        self.err_console.print(Text(text, style="dim"), soft_wrap=True)

    def table(
        self,
        columns: Sequence[str],
        rows: Iterable[Sequence[object]],
        *,
        title: str | None = None,
        caption: str | None = None,
        header: bool = True,
    ) -> None:
        """A table; numbers are right-aligned."""
        materialised = [list(row) for row in rows]
        table = Table(
            title=title,
            caption=caption,
            title_justify="left",
            caption_justify="left",
            show_header=header,
        )
        for index, name in enumerate(columns):
            values = [row[index] for row in materialised if row[index] is not None]
            numeric = bool(values) and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
            )
            table.add_column(name, justify="right" if numeric else "left", overflow="fold")
        for row in materialised:
            table.add_row(*(_cell(value) for value in row))
        self.console.print(table)

    def json(self, data: Any) -> None:
        """``data`` as indented JSON on stdout."""
        self.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
        self.stdout.flush()

    def csv(self, records: Iterable[Mapping[str, Any]], fields: Sequence[str]) -> None:
        """``records`` as CSV with a header row on stdout, every cell through ``csv_cell``
        (text that a spreadsheet would run as a formula gets a leading single quote)."""
        writer = csv.writer(self.stdout, lineterminator="\n")
        writer.writerow([csv_cell(name) for name in fields])
        for record in records:
            writer.writerow([csv_cell(record.get(name)) for name in fields])
        self.stdout.flush()

    def error(self, message: str) -> None:
        """The one line a failure shows: ``thingspace-swap: error: ...`` on stderr."""
        self.stderr.write(f"{PROG}: error: {one_line(message)}\n")
        self.stderr.flush()

    @contextmanager
    def progress(
        self, total: int, description: str, *, enabled: bool = True
    ) -> Iterator[ProgressBar]:
        """A progress bar on stderr for the ``with`` block (a no-op when not ``enabled``)."""
        if not enabled:
            yield ProgressBar(None, total, description)
            return
        self.stdout.flush()  # what came before shows first when both go to one terminal
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.err_console,
            auto_refresh=False,
        )
        with progress:
            bar = ProgressBar(progress, total, description)
            yield bar
            progress.refresh()
