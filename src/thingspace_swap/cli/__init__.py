"""The ``thingspace-swap`` command line (the ``cli`` extra: ``pip install 'thingspace-swap[cli]'``).

``thingspace-swap demo`` runs the whole swap lifecycle on the built-in simulator; the other
commands work on a real account (or on a simulator through ``--base-url``). Run
``thingspace-swap --help`` for the list.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``thingspace-swap`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    from .app import run

    return run(argv)
