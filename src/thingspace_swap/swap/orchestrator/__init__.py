"""The swap orchestrator: [SwapOrchestrator][thingspace_swap.swap.SwapOrchestrator] and
[AsyncSwapOrchestrator][thingspace_swap.swap.AsyncSwapOrchestrator], one face over parts that each
do one thing.

| part | does |
|---|---|
| ``_submissions`` | validation, batch creation, rollback |
| ``_worker`` | queue messages and the periodic sweep |
| ``_runner`` | one change through the pure lifecycle (``machine``): write, then act |
| ``_ledger`` | batch records: creation, finished counts, completion, operator commands |
| ``_commands`` | cancel and retry, recorded on the batch first and resumable |
| ``_inbox`` | callbacks kept durably and matched to their change |
| ``_review`` | audit verification and reconciliation |
| ``_announcer`` | notifications and counters |
| ``_messages`` | the queue message format |
| ``_context`` | what the parts share, and the one retry-on-conflict rule |
"""

from ._commands import RetryReport
from ._messages import Disposition
from ._orchestrator import AsyncSwapOrchestrator, BatchNotFoundError, SwapOrchestrator
from ._submissions import Submission
from ._worker import WorkReport

__all__ = [
    "AsyncSwapOrchestrator",
    "BatchNotFoundError",
    "Disposition",
    "RetryReport",
    "Submission",
    "SwapOrchestrator",
    "WorkReport",
]
