"""A batch at a glance, read from aggregates: counts by phase and one page of the changes that
did not complete, however large the batch (what ``thingspace-swap status`` shows)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import attrs

from ._html import block, heading, progress, table, when
from .model import TERMINAL, Batch, Change, Phase
from .ports import PhaseIndex, Store
from .reports import BatchStatus

__all__ = ["NOT_COMPLETED", "BatchSummary", "phase_counts", "summarize"]

#: Every phase but ``completed``: the changes a summary lists.
NOT_COMPLETED = tuple(p for p in Phase if p is not Phase.COMPLETED)


@attrs.frozen
class BatchSummary:
    """A batch's counts by phase and its first ``limit`` changes not completed (in index order).

    ``counts`` covers every change; ``not_completed`` is one page of them (``more`` says how many
    did not fit). [BatchStatus][thingspace_swap.swap.BatchStatus] holds every change instead."""

    batch: Batch
    counts: Mapping[str, int]
    not_completed: tuple[Change, ...]

    @property
    def total(self) -> int:
        """How many changes the batch has."""
        return sum(self.counts.values())

    @property
    def finished(self) -> int:
        """How many changes are terminal."""
        return sum(n for phase, n in self.counts.items() if Phase(phase) in TERMINAL)

    @property
    def done(self) -> bool:
        return self.finished == self.total

    @property
    def progress(self) -> float:
        return self.finished / self.total if self.total else 1.0

    @property
    def more(self) -> int:
        """Changes not completed beyond the page."""
        waiting = self.total - self.counts.get(Phase.COMPLETED.value, 0)
        return waiting - len(self.not_completed)

    def to_records(self) -> list[dict[str, Any]]:
        """The page's changes as flat dicts (the columns of ``BatchStatus.to_records``)."""
        return BatchStatus(self.batch, self.not_completed).to_records()

    def _repr_html_(self) -> str:
        batch = self.batch
        rows = [(c.change_id, c.line, c.phase.value, c.attempt) for c in self.not_completed]
        return block(
            heading(
                f"Batch {batch.batch_id}",
                f"account {batch.account_name}",
                batch.state.value,
                f"created {when(batch.created_at)}",
            ),
            progress(self.finished, self.total),
            table(("phase", "changes"), sorted(self.counts.items())),
            table(("change", "line", "phase", "attempt"), rows, total=len(rows) + self.more),
        )


def summarize(store: Store, batch: Batch, limit: int) -> BatchSummary:
    """``batch``'s summary: from the store's aggregates when it has them
    ([PhaseIndex][thingspace_swap.swap.ports.PhaseIndex]), else from one paged read of its
    changes, keeping only the page."""
    if isinstance(store, PhaseIndex):
        counts = store.phase_counts(batch.batch_id)
        page = store.changes_in(batch.batch_id, NOT_COMPLETED, limit)
        return BatchSummary(batch, counts, tuple(page))
    counted: Counter[str] = Counter()
    kept: list[Change] = []
    for change in store.changes(batch.batch_id):
        counted[change.phase.value] += 1
        if change.phase is not Phase.COMPLETED and len(kept) < limit:
            kept.append(change)
    return BatchSummary(batch, dict(counted), tuple(kept))


def phase_counts(store: Store, batch_id: str) -> dict[str, int]:
    """How many of the batch's changes are in each phase: the store's aggregate when it has a
    [PhaseIndex][thingspace_swap.swap.ports.PhaseIndex], else counted as its changes are read,
    a page at a time (never all held at once)."""
    if isinstance(store, PhaseIndex):
        return store.phase_counts(batch_id)
    return dict(Counter(change.phase.value for change in store.changes(batch_id)))
