"""The in-memory adapters' old home: they live in ``thingspace_swap.backends.memory``."""

from ..backends.memory import MemoryMetrics, MemoryNotifier, MemoryQueue, MemoryStore

__all__ = ["MemoryMetrics", "MemoryNotifier", "MemoryQueue", "MemoryStore"]
