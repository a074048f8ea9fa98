"""The lifecycle's queue messages: ``process`` (work on a change now) and ``check`` (look at a
waiting change when its deadline comes), written and read here only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from ..model import Change
from ..ports import OutgoingMessage

__all__ = ["Disposition", "message", "parse_message"]

#: What became of a processed message: ``done`` (acked), ``busy`` (released until the change's
#: lease ends), ``dead_lettered`` (poison), ``errors`` (released to be delivered again).
Disposition = Literal["done", "busy", "dead_lettered", "errors"]


def message(
    kind: Literal["process", "check"], change: Change, not_before: float = 0.0, delay: float = 0.0
) -> OutgoingMessage:
    """A message about ``change`` as it is now: sent twice from the same version, it is one
    message (deduplicated); every new version sends a new one."""
    body: dict[str, Any] = {"type": kind, "change_id": change.change_id, "attempt": change.attempt}
    dedup = f"{change.change_id}:v{change.version}:{kind}"
    if kind == "check":
        body["not_before"] = not_before
        dedup += f":{not_before:.3f}"
    return OutgoingMessage(
        body=body, group=change.line, dedup_id=dedup, delay=delay, priority=change.priority
    )


def parse_message(
    body: Mapping[str, Any] | None,
) -> tuple[Literal["process", "check"], str, float] | str:
    """(kind, change_id, not_before), or why the message is poison."""
    if body is None:
        return "body is not a JSON object"
    kind, change_id, not_before = body.get("type"), body.get("change_id"), body.get("not_before", 0)
    if kind not in ("process", "check"):
        return f"unknown message type {kind!r}"
    if not isinstance(change_id, str) or not change_id:
        return "no change_id"
    if not isinstance(not_before, (int, float)) or isinstance(not_before, bool):
        return "not_before is not a number"
    return kind, change_id, float(not_before)
