"""The commands, one module per group: each adds its parsers (``register``) beside the
handlers that run them, and imports what a handler needs only when it runs, so that ``--help``
and usage errors stay quick and need no extra."""

from __future__ import annotations

from collections.abc import Callable

from ..parsing import Commands, Parents
from . import audit, auth, batches, callbacks, demo, inventory, report, simulator, swap

__all__ = ["REGISTER"]

#: Each group's ``register``, in the order ``--help`` lists the commands.
REGISTER: tuple[Callable[[Commands, Parents], None], ...] = (
    demo.register,
    inventory.register,
    swap.register,
    batches.register,
    callbacks.register,
    auth.register,
    audit.register,
    report.register,
    simulator.register,
)
