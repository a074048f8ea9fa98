"""``demo``: the whole swap lifecycle on the built-in simulator (no credentials)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..parsing import Commands, Parents, add_command

if TYPE_CHECKING:
    from ..context import Context

__all__ = ["demo", "register"]


def register(commands: Commands, p: Parents) -> None:
    """Add ``demo``."""
    parser = add_command(
        commands,
        "demo",
        demo,
        help="run the whole swap lifecycle on the built-in simulator (no credentials)",
        examples="""\
  thingspace-swap demo                            # 300 devices, light faults, a few seconds
  thingspace-swap demo --devices 1000 --faults heavy --seed 7
  thingspace-swap demo --over-http --devices 50   # real HTTP on loopback, real time
  thingspace-swap demo --data ./demo && thingspace-swap report --data ./demo --chart demo.png
  thingspace-swap demo --json | jq .counts

It swaps N devices (ICCID, IMEI or both, some with a plan change); a few are designed to fail
validation and a few to fail on ThingSpace. Exit code 0 only when every device ended where it
should, no line was submitted twice and the audit trail verifies.
""",
        parents=[p.debug, p.json],
    )
    parser.add_argument("--devices", type=int, default=300, help="devices to swap (default 300)")
    parser.add_argument("--seed", type=int, default=2026, help="seed of inventory and faults")
    parser.add_argument(
        "--faults",
        choices=("none", "light", "heavy"),
        default="light",
        help="throttling, 5xx, dropped/duplicated callbacks, lost responses (default light)",
    )
    parser.add_argument(
        "--over-http",
        action="store_true",
        help="serve the simulator on loopback HTTP and receive callbacks as real POSTs",
    )
    parser.add_argument("--data", metavar="DIR", help="keep the SQLite store here (default: temp)")


def demo(ctx: Context) -> int:
    """``demo``: run it with the command's options."""
    from ..demo import DemoOptions, run_demo

    options = ctx.options
    return run_demo(
        DemoOptions(
            devices=options.devices,
            seed=options.seed,
            faults=options.faults,
            over_http=options.over_http,
            data=Path(options.data) if options.data else None,
            json=options.json,
        ),
        ctx.out,
    )
