"""The swap lifecycle: validate, queue, process device by device, settle, audit, notify.

```python
from thingspace_swap.swap import MemoryQueue, MemoryStore, SwapItem, SwapOrchestrator, SwapRequest

orchestrator = SwapOrchestrator(client, queue=MemoryQueue(), store=MemoryStore())
submission = orchestrator.submit(SwapRequest(account, [SwapItem.sim_swap(old, new)]))
status = orchestrator.run_until_complete(submission.batch.batch_id)
```
"""

from typing import TYPE_CHECKING, Any

from .audit import AuditReport
from .callbacks import CallbackIntake, CallbackResponse, asgi_app, register_listener
from .machine import LifecycleSettings
from .model import (
    TERMINAL,
    Batch,
    BatchCommand,
    BatchState,
    Category,
    Change,
    ErrorInfo,
    Phase,
    Priority,
    Step,
)
from .orchestrator import (
    AsyncSwapOrchestrator,
    BatchNotFoundError,
    RetryReport,
    Submission,
    SwapOrchestrator,
    WorkReport,
)
from .ports import (
    AuditEntry,
    ConflictError,
    InboxEntry,
    Metrics,
    Notification,
    Notifier,
    OutgoingMessage,
    Queue,
    QueueStats,
    ReceivedMessage,
    Store,
)
from .reports import BatchStatus, ItemCheck, Problem, ReconcileReport, ValidationReport
from .requests import CsvProblem, SwapItem, SwapRequest, read_csv

if TYPE_CHECKING:  # the in-memory adapters are imported when first used (see __getattr__)
    from ..backends.memory import MemoryMetrics, MemoryNotifier, MemoryQueue, MemoryStore

__all__ = [
    "TERMINAL",
    "AsyncSwapOrchestrator",
    "AuditEntry",
    "AuditReport",
    "Batch",
    "BatchCommand",
    "BatchNotFoundError",
    "BatchState",
    "BatchStatus",
    "CallbackIntake",
    "CallbackResponse",
    "Category",
    "Change",
    "ConflictError",
    "CsvProblem",
    "ErrorInfo",
    "InboxEntry",
    "ItemCheck",
    "LifecycleSettings",
    "MemoryMetrics",
    "MemoryNotifier",
    "MemoryQueue",
    "MemoryStore",
    "Metrics",
    "Notification",
    "Notifier",
    "OutgoingMessage",
    "Phase",
    "Priority",
    "Problem",
    "Queue",
    "QueueStats",
    "ReceivedMessage",
    "ReconcileReport",
    "RetryReport",
    "Step",
    "Store",
    "Submission",
    "SwapItem",
    "SwapOrchestrator",
    "SwapRequest",
    "ValidationReport",
    "WorkReport",
    "asgi_app",
    "read_csv",
    "register_listener",
]


def __getattr__(name: str) -> Any:
    """The in-memory adapters (:mod:`thingspace_swap.backends.memory`), imported on first use
    so that the core does not import an adapter."""
    if name in ("MemoryMetrics", "MemoryNotifier", "MemoryQueue", "MemoryStore"):
        from ..backends import memory

        return getattr(memory, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
