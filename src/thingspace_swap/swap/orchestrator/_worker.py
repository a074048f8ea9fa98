"""The worker: receives queue messages and settles each with the queue, and the sweep that
finds what no message will bring (deadlines passed, commands and outbox messages left behind,
counts a crash left wrong)."""

from __future__ import annotations

import logging
import uuid
from collections import Counter

import attrs

from ..._core.commands import Flow, KeepBusy, Sleep
from ..events import Begin, Event, Timeout
from ..model import Batch, Change
from ..ports import ReceivedMessage
from ._commands import Commands
from ._context import Context
from ._ledger import Ledger
from ._messages import Disposition, message, parse_message
from ._runner import Runner

__all__ = ["WorkReport", "Worker"]

logger = logging.getLogger("thingspace_swap.swap")


@attrs.frozen
class WorkReport:
    """What one ``work`` call did."""

    messages: int = 0
    dead_lettered: int = 0
    busy: int = 0
    errors: int = 0


class Worker:
    """Message handling and the periodic sweep."""

    def __init__(
        self, context: Context, ledger: Ledger, runner: Runner, commands: Commands
    ) -> None:
        self._context = context
        self._ledger = ledger
        self._runner = runner
        self._commands = commands
        self._recounted: dict[str, float] = {}

    def work(
        self, max_messages: int | None, until_idle: bool, poll: float, concurrency: int = 1
    ) -> Flow[WorkReport]:
        handled = 0
        outcomes: Counter[Disposition] = Counter()

        def more(wanted: int) -> list[Flow[Disposition]]:
            nonlocal handled
            if max_messages is not None:
                wanted = min(wanted, max_messages - handled)
            messages = self._receive(wanted) if wanted > 0 else []
            handled += len(messages)
            return [self.handle(received) for received in messages]

        while max_messages is None or handled < max_messages:
            before = handled
            if concurrency == 1:
                for flow in more(10):
                    outcomes[(yield from flow)] += 1
            else:  # a message starts as soon as a slot is free, not when a round's last ends
                outcomes.update((yield KeepBusy(more, concurrency)))
            if handled == before:
                if until_idle:
                    break
                yield Sleep(poll)
        stats = self._context.queue.stats()
        self._context.metrics.gauge("swap.queue.depth", stats.visible + stats.delayed)
        self._context.metrics.gauge("swap.queue.lag", stats.oldest_age)
        return WorkReport(handled, outcomes["dead_lettered"], outcomes["busy"], outcomes["errors"])

    def _receive(self, wanted: int) -> list[ReceivedMessage]:
        """Up to ``wanted`` messages, in receives of at most 10 (SQS's limit); a receive that
        comes back short ends it."""
        queue, lease = self._context.queue, self._context.settings.lease
        messages: list[ReceivedMessage] = []
        while len(messages) < wanted:
            size = min(10, wanted - len(messages))
            batch = queue.receive(size, visibility_timeout=lease)
            messages += batch
            if len(batch) < size:
                break
        return messages

    def handle(self, received: ReceivedMessage) -> Flow[Disposition]:
        """Process one message and settle it with the queue."""
        context, queue = self._context, self._context.queue
        parsed = parse_message(received.body)
        if isinstance(parsed, str):
            queue.dead_letter(received, f"poison message: {parsed}")
            context.metrics.count("swap.queue.poison")
            logger.warning("dead-lettered a poison message: %s", parsed)
            return "dead_lettered"
        kind, change_id, not_before = parsed
        now = context.clock.time()
        change = context.store.get_change(change_id)
        if change is None:
            queue.dead_letter(received, f"no change {change_id}")
            return "dead_lettered"
        if not_before > now:  # a check later than the queue's delay limit: wait again
            delay = min(queue.max_delay, not_before - now)
            queue.send([message(kind, change, not_before, delay=delay)])
            queue.ack(received)
            return "done"
        try:
            owner = self._owner()
            event: Event = Begin(owner) if kind == "process" else Timeout(owner)
            busy = yield from self._runner.drive(change_id, event, change=change)
        except Exception:
            logger.exception("processing %s failed; the message will be delivered again", change_id)
            context.metrics.count("swap.worker.error")
            queue.release(received, delay=context.settings.retry_initial)
            return "errors"
        if busy is not None:
            queue.release(received, delay=max(0.0, busy - now))
            return "busy"
        queue.ack(received)
        return "done"

    def _owner(self) -> str:
        """Each delivery and each swept change works under a lease of its own, even on one
        worker's threads."""
        return f"{self._context.worker_id}/{uuid.uuid4().hex[:8]}"

    def sweep(self, limit: int, concurrency: int = 1) -> Flow[int]:
        context = self._context
        self._ledger.relay(None)
        now = context.clock.time()
        open_batches = list(context.store.batches(open_only=True))
        lease = context.settings.lease
        stale = [b for b in open_batches if b.command is not None and now - b.command.at >= lease]
        yield from self._commands.finish(stale)
        seen: set[str] = set()
        pending: list[Change] = []

        def more(wanted: int) -> list[Flow[float | None]]:
            """The next due changes' flows, ``limit`` read at a time; each change once."""
            if not pending:
                due = context.store.due_changes(context.clock.time(), limit)
                pending.extend(c for c in due if c.change_id not in seen)
            taken = pending[:wanted]
            del pending[:wanted]
            seen.update(c.change_id for c in taken)
            return [
                self._runner.drive(c.change_id, Timeout(self._owner()), change=c, read_first=False)
                for c in taken
            ]

        if concurrency == 1:
            while flows := more(limit):
                for flow in flows:
                    yield from flow
        else:  # a deadline passes for many changes at once after an outage: not one by one
            yield KeepBusy(more, concurrency)
        self._recount(open_batches)
        return len(seen)

    def _recount(self, open_batches: list[Batch]) -> None:
        """Complete batches whose changes are all finished. A count can only lag after a crash
        between a change's last write and the count; such batches are recounted from their
        changes now and then, not on every sweep."""
        now = self._context.clock.time()
        recounted: dict[str, float] = {}  # the memo keeps only batches still unfinished
        for batch in open_batches:
            last = self._recounted.get(batch.batch_id, 0.0)
            recounted[batch.batch_id] = last
            if batch.terminal >= batch.size or now - last >= self._context.settings.lease:
                recounted[batch.batch_id] = now
                self._ledger.complete_if_done(batch.batch_id)
        self._recounted = recounted
