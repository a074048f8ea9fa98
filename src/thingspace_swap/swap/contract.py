"""The contract suite's old home: it lives in ``thingspace_swap.testing.contract``.

``ContractClock``, the suite's clock here, is now the simulator's
[VirtualClock][thingspace_swap.testing.VirtualClock] (which starts at ``DEFAULT_EPOCH`` unless given
a start; the suite starts its own at ``T0``).
"""

from ..testing import VirtualClock as ContractClock
from ..testing.contract import (
    T0,
    QueueContract,
    QueueFactory,
    RawQueue,
    StoreContract,
    new_batch,
    next_batch,
    next_change,
)

__all__ = [
    "T0",
    "ContractClock",
    "QueueContract",
    "QueueFactory",
    "RawQueue",
    "StoreContract",
    "new_batch",
    "next_batch",
    "next_change",
]
