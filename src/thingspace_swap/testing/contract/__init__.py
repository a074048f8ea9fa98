"""A contract test suite that any queue or store adapter runs against itself.

```python
import pytest
from thingspace_swap.testing.contract import QueueContract, StoreContract

class TestMyQueue(QueueContract):
    @pytest.fixture
    def make_queue(self):  # (clock, **options) -> queue; options: max_receives, fifo, dedup_window
        return lambda clock, **options: MyQueue(clock=clock, **options)

class TestMyStore(StoreContract):
    @pytest.fixture
    def store(self):
        return MyStore()
```

A store whose messages go into a queue of its own (as SQLite's do) overrides the
``relay_queue`` fixture with that queue; by default ``relay`` is tested with a
[MemoryQueue][thingspace_swap.backends.memory.MemoryQueue].

Queues are driven by the simulator's [VirtualClock][thingspace_swap.testing.VirtualClock], started
at ``T0`` (time moves only when a test advances it), and need ``send_raw`` besides the
[Queue][thingspace_swap.swap.ports.Queue] methods. The helpers ``new_batch``, ``next_change`` and
``next_batch`` build valid records whose audit entries are chained with ``chain_entry``;
``outgoing`` and ``numbers`` make and read the numbered messages the queue tests send (for an
adapter's own versions of them). Needs pytest (``import thingspace_swap.testing`` does not import
this package).
"""

from ._records import T0, new_batch, next_batch, next_change, numbers, outgoing
from .queue import QueueContract, QueueFactory, RawQueue
from .store import StoreContract

__all__ = [
    "T0",
    "QueueContract",
    "QueueFactory",
    "RawQueue",
    "StoreContract",
    "new_batch",
    "next_batch",
    "next_change",
    "numbers",
    "outgoing",
]
