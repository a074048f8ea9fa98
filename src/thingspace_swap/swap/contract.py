"""The contract suite's old home: it lives in :mod:`thingspace_swap.testing.contract`."""

from ..testing.contract import (
    T0,
    ContractClock,
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
