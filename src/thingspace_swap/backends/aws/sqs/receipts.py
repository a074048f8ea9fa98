"""Receipts: which of a message's receipts still act within one queue object, and changing
the visibility of messages by receipt."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from ....swap.ports import ReceivedMessage
from .attributes import BATCH

__all__ = ["Receipts", "change_visibility"]


class Receipts:
    """The latest receipt of each message received (up to ``kept`` of them) and whether it was
    spent (acked, released or dead-lettered): SQS honours any receipt a message ever had, the
    port only the latest, unspent one. A message of a Lambda event is deleted by Lambda once
    the function reports it done, so acking it costs no call."""

    def __init__(self, kept: int = 10_000) -> None:
        self._kept = kept
        self._lock = threading.Lock()
        # message id -> (latest receipt, spent, deleted by Lambda)
        self._receipts: OrderedDict[str, tuple[str, bool, bool]] = OrderedDict()

    def remember(self, message: ReceivedMessage, *, deleted_by_lambda: bool = False) -> None:
        with self._lock:
            self._receipts[message.message_id] = (message.receipt, False, deleted_by_lambda)
            self._receipts.move_to_end(message.message_id)
            while len(self._receipts) > self._kept:
                self._receipts.popitem(last=False)

    def deleted_by_lambda(self, message: ReceivedMessage) -> bool:
        """Whether Lambda deletes ``message`` when the function reports it done."""
        with self._lock:
            known = self._receipts.get(message.message_id)
        return known is not None and known[2]

    def usable(self, message: ReceivedMessage) -> bool:
        """Whether ``message``'s receipt still acts (one never seen here does)."""
        if not message.receipt:
            return False
        with self._lock:
            known = self._receipts.get(message.message_id)
        return known is None or known[:2] == (message.receipt, False)

    def spend(self, message: ReceivedMessage) -> None:
        with self._lock:
            known = self._receipts.get(message.message_id)
            if known is not None:
                self._receipts[message.message_id] = (message.receipt, True, known[2])


def change_visibility(client: Any, url: str, receipts: Sequence[tuple[str, int]]) -> None:
    """Hide messages for the given seconds (0: show them again), 10 per call; best effort: a
    message not hidden is delivered as usual."""
    for start in range(0, len(receipts), BATCH):
        client.change_message_visibility_batch(
            QueueUrl=url,
            Entries=[
                {"Id": f"e{index}", "ReceiptHandle": receipt, "VisibilityTimeout": seconds}
                for index, (receipt, seconds) in enumerate(receipts[start : start + BATCH])
            ],
        )
