"""The queue half of [SqliteBackend][thingspace_swap.backends.sqlite.backend.SqliteBackend]:
messages in the backend's file, delivered like SQS's."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Sequence
from typing import Any

from ...clock import Clock
from ...swap.model import Priority
from ...swap.ports import OutgoingMessage, QueueStats, ReceivedMessage, decode_body, encode_body
from ...swap.store_rules import dead_letter_reason
from ._db import Database

__all__ = ["SqliteQueue"]

# Message states. A parked message is ready but waits behind its group's message in flight;
# it is moved back to READY when that message leaves flight (so receive never rescans it).
_READY, _DELAYED, _FLIGHT, _PARKED = 0, 1, 2, 3

_PAGE_RECEIVE = 100  # ready messages read per query by receive (most are usually delivered)

_MessageRow = tuple[int, str, str, str, int, int]  # seq, id, raw, group, priority, receives


class SqliteQueue:
    """The queue half of [SqliteBackend][thingspace_swap.backends.sqlite.backend.SqliteBackend]:
    SQS-like delivery with visibility timeouts, FIFO message groups, deduplication ids, delays,
    priorities and a dead-letter table.

    Receipts stay valid while the message is in flight (also past its visibility timeout, until
    a receive makes it visible again); acking a stale receipt does nothing."""

    #: Like SQS, so the lifecycle takes the same paths on every backend.
    max_delay: float = 900.0

    def __init__(
        self,
        db: Database,  # SqliteBackend makes it
        *,
        clock: Clock,
        max_receives: int = 5,
        fifo: bool = True,
        dedup_window: float = 300.0,
    ) -> None:
        self._db = db
        self._clock = clock
        self.max_receives = max_receives
        self.fifo = fifo
        self.dedup_window = dedup_window
        if not fifo:  # nothing waits behind a group without FIFO groups
            with db.write() as conn:
                conn.execute("UPDATE messages SET state = 0 WHERE state = 3")

    # sending -------------------------------------------------------------------------------

    def send(self, messages: Sequence[OutgoingMessage]) -> None:
        if not messages:
            return
        with self._db.write() as conn:
            self.enqueue(conn, messages)

    def enqueue(self, conn: sqlite3.Connection, messages: Sequence[OutgoingMessage]) -> None:
        """Send ``messages`` within the caller's write transaction on ``conn`` (the store
        writes a record and the messages that follow from it in one transaction): those whose
        deduplication id was not seen within the window, each once."""
        if not messages:
            return
        now = self._clock.time()
        conn.execute("DELETE FROM dedup WHERE expires_at <= ?", (now,))
        seen = _seen(conn, [m.dedup_id for m in messages])
        fresh = []
        for message in messages:
            if message.dedup_id not in seen:
                seen.add(message.dedup_id)
                fresh.append(message)
        expires = now + self.dedup_window
        conn.executemany(
            "INSERT INTO dedup (dedup_id, expires_at) VALUES (?, ?)",
            [(m.dedup_id, expires) for m in fresh],
        )
        # ids of one random prefix, numbered: unique, and next to each other in their index
        prefix = uuid.uuid4().hex
        conn.executemany(
            "INSERT INTO messages (message_id, raw, grp, priority, sent_at, state, visible_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [_message_row(f"{prefix}-{n:06d}", m, now) for n, m in enumerate(fresh)],
        )

    def send_raw(self, raw: str, *, group: str = "raw", delay: float = 0.0) -> None:
        """Enqueue an arbitrary body (tests use it for poison messages)."""
        with self._db.write() as conn:
            self._put(conn, raw, group, Priority.NORMAL, delay, self._clock.time())

    def _put(
        self,
        conn: sqlite3.Connection,
        raw: str,
        group: str,
        priority: Priority,
        delay: float,
        now: float,
    ) -> None:
        conn.execute(
            "INSERT INTO messages (message_id, raw, grp, priority, sent_at, state, visible_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            _row(str(uuid.uuid4()), raw, group, priority, delay, now),
        )

    # receiving -----------------------------------------------------------------------------

    def receive(
        self, max_messages: int = 10, visibility_timeout: float = 60.0
    ) -> list[ReceivedMessage]:
        if max_messages <= 0:
            return []
        with self._db.write() as conn:
            now = self._clock.time()
            self._wake(conn, now)
            out: list[ReceivedMessage] = []
            busy: dict[str, bool] = {}
            while len(out) < max_messages:
                # Every row looked at leaves the ready set (delivered, parked or buried), so
                # the next page starts where this one stopped.
                rows: list[_MessageRow] = conn.execute(
                    "SELECT seq, message_id, raw, grp, priority, receive_count FROM messages"
                    " WHERE state = 0 ORDER BY priority DESC, seq LIMIT ?",
                    (max(max_messages - len(out), _PAGE_RECEIVE),),
                ).fetchall()
                if not rows:
                    break
                for seq, message_id, raw, group, priority, count in rows:
                    if len(out) == max_messages:
                        break
                    if self.fifo and self._busy(conn, group, busy):
                        conn.execute("UPDATE messages SET state = 3 WHERE seq = ?", (seq,))
                        continue
                    count += 1
                    reason = dead_letter_reason(count, self.max_receives)
                    if reason is not None:
                        self._bury(conn, seq, reason, now, receive_count=count)
                        continue
                    receipt = f"{message_id}:{count}"
                    conn.execute(
                        "UPDATE messages SET state = 2, receive_count = ?, receipt = ?,"
                        " visible_at = ? WHERE seq = ?",
                        (count, receipt, now + visibility_timeout, seq),
                    )
                    busy[group] = True
                    out.append(
                        ReceivedMessage(
                            message_id=message_id,
                            receipt=receipt,
                            body=decode_body(raw),
                            raw=raw,
                            group=group,
                            receive_count=count,
                            priority=Priority(priority),
                        )
                    )
            return out

    def _busy(self, conn: sqlite3.Connection, group: str, known: dict[str, bool]) -> bool:
        if group not in known:
            known[group] = (
                conn.execute(
                    "SELECT 1 FROM messages WHERE grp = ? AND state = 2 LIMIT 1", (group,)
                ).fetchone()
                is not None
            )
        return known[group]

    def _wake(self, conn: sqlite3.Connection, now: float) -> None:
        """Delays that ended and visibility timeouts that expired make messages ready."""
        groups = [
            row[0]
            for row in conn.execute(
                "SELECT DISTINCT grp FROM messages WHERE state = 2 AND visible_at <= ?", (now,)
            )
        ]
        conn.execute(
            "UPDATE messages SET state = 0, receipt = NULL"
            " WHERE state IN (1, 2) AND visible_at <= ?",
            (now,),
        )
        for group in groups:
            self._unpark(conn, group)

    def _unpark(self, conn: sqlite3.Connection, group: str) -> None:
        if self.fifo:
            conn.execute("UPDATE messages SET state = 0 WHERE state = 3 AND grp = ?", (group,))

    def _held(self, conn: sqlite3.Connection, message: ReceivedMessage) -> tuple[int, str] | None:
        row = conn.execute(
            "SELECT seq, grp FROM messages WHERE receipt = ?", (message.receipt,)
        ).fetchone()
        return (int(row[0]), str(row[1])) if row else None

    def _bury(
        self,
        conn: sqlite3.Connection,
        seq: int,
        reason: str,
        now: float,
        *,
        receive_count: int | None = None,
    ) -> None:
        conn.execute(
            "INSERT INTO dead (message_id, raw, grp, priority, receive_count, reason, died_at)"
            " SELECT message_id, raw, grp, priority, coalesce(?, receive_count), ?, ?"
            " FROM messages WHERE seq = ?",
            (receive_count, reason, now, seq),
        )
        conn.execute("DELETE FROM messages WHERE seq = ?", (seq,))

    def ack(self, message: ReceivedMessage) -> None:
        with self._db.write() as conn:
            held = self._held(conn, message)
            if held is not None:
                conn.execute("DELETE FROM messages WHERE seq = ?", (held[0],))
                self._unpark(conn, held[1])

    def release(self, message: ReceivedMessage, delay: float = 0.0) -> None:
        with self._db.write() as conn:
            held = self._held(conn, message)
            if held is not None:
                conn.execute(
                    "UPDATE messages SET state = ?, visible_at = ?, receipt = NULL WHERE seq = ?",
                    (_DELAYED if delay > 0 else _READY, self._clock.time() + delay, held[0]),
                )
                self._unpark(conn, held[1])

    def extend(self, message: ReceivedMessage, visibility_timeout: float) -> None:
        with self._db.write() as conn:
            held = self._held(conn, message)
            if held is not None:
                conn.execute(
                    "UPDATE messages SET visible_at = ? WHERE seq = ?",
                    (self._clock.time() + visibility_timeout, held[0]),
                )

    def dead_letter(self, message: ReceivedMessage, reason: str) -> None:
        with self._db.write() as conn:
            held = self._held(conn, message)
            if held is not None:
                self._bury(conn, held[0], reason, self._clock.time())
                self._unpark(conn, held[1])

    def dead_letters(self) -> list[tuple[ReceivedMessage, str]]:
        rows = self._db.conn().execute(
            "SELECT message_id, raw, grp, priority, receive_count, reason FROM dead ORDER BY seq"
        )
        return [
            (
                ReceivedMessage(
                    message_id=message_id,
                    receipt="",
                    body=decode_body(raw),
                    raw=raw,
                    group=group,
                    receive_count=count,
                    priority=Priority(priority),
                ),
                reason,
            )
            for message_id, raw, group, priority, count, reason in rows
        ]

    def stats(self) -> QueueStats:
        """Counts as of now: a message whose visibility timeout has expired counts as visible
        (MemoryQueue counts it in flight until the next receive)."""
        now = self._clock.time()
        total, in_flight, delayed, dead, oldest = (
            self._db.conn()
            .execute(
                "SELECT (SELECT count(*) FROM messages),"
                " (SELECT count(*) FROM messages WHERE state = 2 AND visible_at > ?1),"
                " (SELECT count(*) FROM messages"
                " WHERE state IN (1, 2) AND visible_at > ?1 AND state = 1),"
                " (SELECT count(*) FROM dead),"
                " (SELECT sent_at FROM messages ORDER BY seq LIMIT 1)",
                (now,),
            )
            .fetchone()
        )
        return QueueStats(
            visible=total - in_flight - delayed,
            in_flight=in_flight,
            delayed=delayed,
            dead=dead,
            oldest_age=0.0 if oldest is None else max(0.0, now - oldest),
        )


def _seen(conn: sqlite3.Connection, dedup_ids: Sequence[str]) -> set[str]:
    """Which of ``dedup_ids`` were sent within the window (a few hundred a query)."""
    seen: set[str] = set()
    for start in range(0, len(dedup_ids), 500):
        chunk = dedup_ids[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        query = f"SELECT dedup_id FROM dedup WHERE dedup_id IN ({marks})"  # noqa: S608
        seen.update(str(row[0]) for row in conn.execute(query, chunk))
    return seen


def _row(
    message_id: str, raw: str, group: str, priority: Priority, delay: float, now: float
) -> tuple[Any, ...]:
    """A new message's row (its id, body, group, priority, when sent, state, visible at)."""
    state = _DELAYED if delay > 0 else _READY
    return (message_id, raw, group, int(priority), now, state, now + delay)


def _message_row(message_id: str, message: OutgoingMessage, now: float) -> tuple[Any, ...]:
    raw = encode_body(message.body)
    return _row(message_id, raw, message.group, message.priority, message.delay, now)
