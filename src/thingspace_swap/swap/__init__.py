"""The swap lifecycle: validate, queue, process device by device, settle, audit, notify.

```python
from thingspace_swap.swap import MemoryQueue, MemoryStore, SwapItem, SwapOrchestrator, SwapRequest

orchestrator = SwapOrchestrator(client, queue=MemoryQueue(), store=MemoryStore())
submission = orchestrator.submit(SwapRequest(account, [SwapItem.sim_swap(old, new)]))
status = orchestrator.run_until_complete(submission.batch.batch_id)
```

The in-memory adapters (``MemoryQueue``, ``MemoryStore``...) and ``asgi_app`` are re-exported
here on first use: the core itself imports no adapter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports
from .audit import AuditReport
from .callbacks import CallbackIntake, CallbackResponse, register_listener
from .events import LifecycleSettings
from .metrics import MemoryMetrics
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
    AuditChain,
    AuditEntry,
    BatchCancelledError,
    BatchPart,
    ConflictError,
    InboxEntry,
    Metrics,
    Notification,
    Notifier,
    OutgoingMessage,
    PhaseIndex,
    Queue,
    QueueStats,
    ReceivedMessage,
    Store,
)
from .reports import BatchStatus, ItemCheck, Problem, ReconcileReport, ValidationReport
from .requests import CsvProblem, SwapItem, SwapRequest, read_csv
from .summary import BatchSummary

if TYPE_CHECKING:
    from ..asgi import asgi_app
    from ..backends.memory import MemoryNotifier, MemoryQueue, MemoryStore

_ADAPTERS = {
    "MemoryNotifier": "..backends.memory",
    "MemoryQueue": "..backends.memory",
    "MemoryStore": "..backends.memory",
    "asgi_app": "..asgi",
}

__all__ = [
    "TERMINAL",
    "AsyncSwapOrchestrator",
    "AuditChain",
    "AuditEntry",
    "AuditReport",
    "Batch",
    "BatchCancelledError",
    "BatchCommand",
    "BatchNotFoundError",
    "BatchPart",
    "BatchState",
    "BatchStatus",
    "BatchSummary",
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
    "PhaseIndex",
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


__getattr__, __dir__ = lazy_exports(__name__, _ADAPTERS)
