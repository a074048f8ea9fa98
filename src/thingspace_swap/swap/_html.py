"""Small HTML and table helpers for the reports' notebook reprs.

Every value is escaped: device ids, plan names and error messages come from outside.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas

__all__ = [
    "MAX_ROWS",
    "STYLE",
    "Raw",
    "block",
    "dataframe",
    "esc",
    "fields",
    "heading",
    "mark",
    "progress",
    "table",
    "when",
]

#: Rows a table shows before "... and N more".
MAX_ROWS = 20

#: Scoped to the reprs' own ``<div class="thingspace-swap">``.
STYLE = (
    "<style>.thingspace-swap table{border-collapse:collapse;margin:4px 0}"
    ".thingspace-swap th,.thingspace-swap td"
    "{padding:2px 8px;text-align:left;vertical-align:top}</style>"
)


class Raw(str):
    """Markup built here (already escaped), inserted as is."""

    __slots__ = ()


def esc(value: object) -> str:
    """``value`` as escaped text (``None`` as empty); ``Raw`` is kept as is."""
    if value is None:
        return ""
    if isinstance(value, Raw):
        return str(value)
    return html.escape(str(value), quote=True)


def when(timestamp: float | None) -> str | None:
    """Epoch seconds as ``YYYY-MM-DD HH:MM:SSZ`` (UTC)."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def mark(ok: bool) -> Raw:
    """A green tick or a red cross."""
    if ok:
        return Raw('<span style="color:#2e7d32">&#10003;</span>')
    return Raw('<span style="color:#c62828">&#10007;</span>')


def block(*parts: str) -> str:
    """The parts in one styled ``<div class="thingspace-swap">``."""
    return f'<div class="thingspace-swap">{STYLE}' + "".join(parts) + "</div>"


def heading(title: object, *details: object) -> str:
    """A bold title followed by its non-empty details, separated by middle dots."""
    parts = [f"<strong>{esc(title)}</strong>"]
    parts += [esc(detail) for detail in details if detail not in (None, "")]
    return "<div>" + " &middot; ".join(parts) + "</div>"


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    total: int | None = None,
    max_rows: int = MAX_ROWS,
) -> str:
    """An HTML table of the first ``max_rows`` rows; ``total`` (the row count, when ``rows``
    is a truncated iterable) decides the "... and N more" line."""
    shown = []
    for count, row in enumerate(rows):
        if count >= max_rows:
            break
        shown.append(row)
    total = len(shown) if total is None else total
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{esc(cell)}</td>" for cell in row) + "</tr>" for row in shown
    )
    more = f"<div><em>... and {total - len(shown)} more</em></div>" if total > len(shown) else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


def fields(items: Iterable[tuple[str, object]]) -> str:
    """A two-column table of names and values (for one record)."""
    rows = "".join(f"<tr><th>{esc(name)}</th><td>{esc(value)}</td></tr>" for name, value in items)
    return f"<table><tbody>{rows}</tbody></table>"


def progress(done: int, total: int) -> str:
    """A progress bar with "done of total finished (percent)"; 100% only when all are."""
    fraction = 1.0 if total == 0 else done / total
    return (
        f'<div><progress value="{fraction:.4f}" max="1" style="width:240px"></progress> '
        f"{done} of {total} finished ({100 * done // total if total else 100}%)</div>"
    )


def dataframe(records: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> pandas.DataFrame:
    """A pandas DataFrame of ``records`` with ``columns`` (kept when there are no records)."""
    try:
        import pandas
    except ImportError as error:
        raise ImportError(
            "to_dataframe() needs pandas: pip install 'thingspace-swap[notebook]' "
            "(or use to_records())"
        ) from error
    return pandas.DataFrame.from_records(list(records), columns=list(columns))


def ids(device_ids: Iterable[Any]) -> str:
    """Device identifiers as ``kind:id`` words."""
    return " ".join(f"{d.kind}:{d.id}" for d in device_ids)
