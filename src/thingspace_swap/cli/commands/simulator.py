"""``simulator``: the ThingSpace simulator on loopback HTTP, with its own options."""

from __future__ import annotations

from ..parsing import Commands, Parents

__all__ = ["register", "run_simulator"]

PROG = "thingspace-swap simulator"


def register(commands: Commands, p: Parents) -> None:
    """Add ``simulator`` to the list of commands (its arguments go to the simulator as they
    are: see ``run_simulator``)."""
    commands.add_parser(
        "simulator",
        help="serve the ThingSpace simulator on loopback HTTP (see simulator --help)",
        add_help=False,
    )


def run_simulator(argv: list[str]) -> int:
    """Run the simulator with ``argv`` (what follows ``simulator``); returns the exit code."""
    from ...testing.__main__ import main as simulator_main

    try:
        return simulator_main(argv, prog=PROG)
    except SystemExit as exit:  # --help, or a usage error it printed
        return exit.code if isinstance(exit.code, int) else 0 if exit.code is None else 2
