"""Work the simulator does later: jobs on a heap ordered by due time on the virtual clock."""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from ._callbacks import Delivery
from ._inventory import Device

__all__ = ["ApplyJob", "DeliverJob", "Job", "JobQueue", "RestoreJob"]


@dataclass(frozen=True)
class ApplyJob:
    """Apply the asynchronous request ``request_id``."""

    request_id: str


@dataclass(frozen=True)
class RestoreJob:
    """Restore ``device`` automatically, if it is still the suspension of ``suspended_at``."""

    device: Device
    suspended_at: float


@dataclass(frozen=True)
class DeliverJob:
    """A (delayed or repeated) delivery attempt."""

    delivery: Delivery


Job = ApplyJob | RestoreJob | DeliverJob


class JobQueue:
    """Jobs by due time; jobs due at the same time run in the order they were scheduled."""

    def __init__(self) -> None:
        self._jobs: list[tuple[float, int, Job]] = []
        self._seq = 0

    def schedule(self, due: float, job: Job) -> None:
        """Run ``job`` at ``due`` (virtual epoch seconds)."""
        self._seq += 1
        heapq.heappush(self._jobs, (due, self._seq, job))

    def pop_due(self, now: float) -> Job | None:
        """Remove and return the first job due at ``now`` (None when none is)."""
        if self._jobs and self._jobs[0][0] <= now:
            return heapq.heappop(self._jobs)[2]
        return None

    def next_due(self) -> float | None:
        """When the next job is due, if any."""
        return self._jobs[0][0] if self._jobs else None
