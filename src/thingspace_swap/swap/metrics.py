"""The orchestrator's default metrics: counters, observations and gauges kept in memory, to
read in process (tests, notebooks, the CLI's summary). Any other
[Metrics][thingspace_swap.swap.ports.Metrics] replaces it; ``thingspace_swap.backends.memory``
re-exports it beside the other in-memory adapters."""

from __future__ import annotations

import threading
from collections import defaultdict, deque

__all__ = ["MemoryMetrics"]


class MemoryMetrics:
    """Counters, observations and gauges in dicts keyed by (name, sorted tags).

    Each observation series keeps its last ``keep`` values, so a long-running worker's memory
    stays flat.
    """

    def __init__(self, *, keep: int = 10_000) -> None:
        self._lock = threading.Lock()
        self.counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = defaultdict(float)
        self.observations: dict[tuple[str, tuple[tuple[str, str], ...]], deque[float]] = (
            defaultdict(lambda: deque(maxlen=keep))
        )
        self.gauges: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

    def count(self, name: str, value: float = 1.0, **tags: str) -> None:
        with self._lock:
            self.counters[(name, tuple(sorted(tags.items())))] += value

    def observe(self, name: str, value: float, **tags: str) -> None:
        with self._lock:
            self.observations[(name, tuple(sorted(tags.items())))].append(value)

    def gauge(self, name: str, value: float, **tags: str) -> None:
        with self._lock:
            self.gauges[(name, tuple(sorted(tags.items())))] = value

    def total(self, name: str) -> float:
        """A counter summed over all its tags."""
        with self._lock:
            return sum(v for (n, _), v in self.counters.items() if n == name)
