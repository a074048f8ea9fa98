"""A new batch's parts written into the SQLite file, within the store's transaction
([SqliteStore.create_batch_in_parts][thingspace_swap.backends.sqlite.store.SqliteStore.create_batch_in_parts]),
and the rows of a change."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from ...swap._codec import encode
from ...swap.model import Change
from ...swap.ports import AuditEntry, BatchPart, ConflictError
from ...swap.store_rules import change_exists, claimants, require_free
from .queue import SqliteQueue

__all__ = ["change_row", "insert_audit", "owners", "write_part"]


def write_part(conn: sqlite3.Connection, queue: SqliteQueue, part: BatchPart) -> None:
    """Claim the part's lines, then write its changes, their index rows, their audit entries
    and its messages, a statement per table."""
    changes = part.changes
    _claim(conn, claimants(changes))
    try:
        conn.executemany(
            "INSERT INTO changes (change_id, batch_id, idx, line, live, deadline,"
            " version, audit_seq, data, phase) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [change_row(change) for change in changes],
        )
    except sqlite3.IntegrityError:
        raise ConflictError(change_exists(_repeated(conn, changes))) from None
    _index_new(conn, changes)
    insert_audit(conn, part.audit)
    queue.enqueue(conn, part.messages)


def change_row(change: Change) -> tuple[Any, ...]:
    return (
        change.change_id,
        change.batch_id,
        change.index,
        change.line,
        int(not change.terminal),
        change.deadline,
        change.version,
        change.audit_seq,
        encode(change),
        change.phase.value,
    )


def _repeated(conn: sqlite3.Connection, changes: Sequence[Change]) -> str:
    """The id of a change a new batch repeats (the first one twice in it or already stored)."""
    seen: set[str] = set()
    for change in changes:
        if change.change_id in seen or _stored(conn, change.change_id):
            return change.change_id
        seen.add(change.change_id)
    return changes[0].change_id if changes else "?"


def _stored(conn: sqlite3.Connection, change_id: str) -> bool:
    found = conn.execute("SELECT 1 FROM changes WHERE change_id = ?", (change_id,)).fetchone()
    return found is not None


def _claim(conn: sqlite3.Connection, claims: Sequence[Change]) -> None:
    """Refuse (ConflictError) the claims of lines another change holds, read a few hundred
    lines a query (a line claimed twice in a new batch: ``claimants`` finds it within a part,
    and this, held by the first claim, across parts)."""
    held = owners(conn, [change.line for change in claims])
    require_free(claims, held.get)


def owners(conn: sqlite3.Connection, lines: Sequence[str]) -> dict[str, str]:
    """The lines of ``lines`` held, with the change holding each (500 lines a query)."""
    found: dict[str, str] = {}
    for start in range(0, len(lines), 500):  # (SQLite's limit on parameters is higher)
        chunk = lines[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        query = f"SELECT line, change_id FROM lines WHERE line IN ({marks})"  # noqa: S608
        found.update((str(line), str(owner)) for line, owner in conn.execute(query, chunk))
    return found


def insert_audit(conn: sqlite3.Connection, audit: Sequence[AuditEntry]) -> None:
    """Append new entries (ConflictError if one exists already)."""
    try:
        conn.executemany(
            "INSERT INTO audit (subject, seq, data) VALUES (?, ?, ?)",
            [(entry.subject, entry.seq, encode(entry)) for entry in audit],
        )
    except sqlite3.IntegrityError:
        raise ConflictError("an audit entry of the new batch exists already") from None


def _index_new(conn: sqlite3.Connection, changes: Sequence[Change]) -> None:
    """``_index`` for the changes of a new batch (nothing to replace), a statement per table;
    a live change holds its line and its names (``holding``), written as rows here."""
    conn.executemany(
        "INSERT OR REPLACE INTO requests (request_id, change_id) VALUES (?, ?)",
        [(request_id, c.change_id) for c in changes for request_id in c.request_ids],
    )
    live = [c for c in changes if not c.terminal]
    conn.executemany(
        "INSERT OR REPLACE INTO lines (line, change_id) VALUES (?, ?)",
        sorted((c.line, c.change_id) for c in live),
    )
    conn.executemany(
        "INSERT OR REPLACE INTO devices (kind, id, change_id) VALUES (?, ?, ?)",
        sorted((kind, name, c.change_id) for c in live for kind, name in _names(c)),
    )


def _names(change: Change) -> set[tuple[str, str]]:
    """``holding(change).names`` as (kind, id): its line's MDN and every identifier it names."""
    names = {("mdn", change.line)}
    for group in (change.device_ids, change.new_ids, change.replaced):
        names.update((d.kind, d.id) for d in group)
    return names
