"""Serve a populated ThingSpace simulator over HTTP: ``python -m thingspace_swap.testing``."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import logging
import shlex
import signal
import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType

from ._clock import WallClock
from ._rules import SimulatorLimits
from .server import http_deliver, serve
from .simulator import ThingSpaceSimulator

__all__ = ["build_parser", "main"]

_EXAMPLE = """\
example:
  python -m thingspace_swap.testing --port 8080 --seed 1 --devices 1000 --request-delay 2
  # then, in another shell, paste the printed export lines and point the client at the URL:
  # ThingSpaceClient(Credentials.from_env(), account_name="0000123456-00001",
  #                  base_url="http://127.0.0.1:8080")

Only loopback hosts are allowed unless --allow-remote is given. The credentials printed are the
simulator's own, not real ThingSpace secrets. Time is real: a request stays Pending for
--request-delay seconds, then its callbacks are POSTed to the registered URL.
"""


def build_parser(prog: str = "python -m thingspace_swap.testing") -> argparse.ArgumentParser:
    """The command line of ``python -m thingspace_swap.testing``."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Serve an in-memory ThingSpace simulator over HTTP on real (wall) time.",
        epilog=_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    add("--port", type=int, default=8080, help="port; 0 picks a free one (default: %(default)s)")
    add("--seed", type=int, default=1, help="seed of tokens, ids and inventory (default: 1)")
    add("--account", default="0000123456-00001", help="account to populate (%(default)s)")
    add("--devices", type=int, default=1000, help="devices to create (default: %(default)s)")
    add(
        "--request-delay",
        type=float,
        default=2.0,
        help="seconds an asynchronous request stays Pending (default: %(default)s)",
    )
    add(
        "--callback-retry-interval",
        type=float,
        default=60.0,
        help="seconds between callback delivery attempts (default: %(default)s)",
    )
    add(
        "--delivery-threads",
        type=int,
        default=8,
        help="callbacks delivered side by side, as ThingSpace does (default: %(default)s)",
    )
    add(
        "--any-callback-port",
        action="store_true",
        help="accept callback URLs on any port, not only ThingSpace's listener ports",
    )
    add(
        "--allow-remote",
        action="store_true",
        help="allow binding a non-loopback address (anyone who reaches it can use it)",
    )
    add("--tick", type=float, default=0.05, help="seconds between runs of due work (0.05)")
    add("-v", "--verbose", action="store_true", help="log every request to stderr")
    return parser


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None, *, prog: str = "python -m thingspace_swap.testing") -> int:
    """Parse ``argv``, build and populate the simulator, serve it until Ctrl-C or SIGTERM."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    problems = [
        (args.devices < 0, "--devices must not be negative"),
        (not 0 <= args.port <= 65535, "--port must be 0-65535"),
        (args.request_delay < 0, "--request-delay must not be negative"),
        (args.delivery_threads < 0, "--delivery-threads must not be negative"),
        (args.callback_retry_interval < 0, "--callback-retry-interval must not be negative"),
        (args.tick <= 0, "--tick must be positive"),
        (
            not args.allow_remote and not _is_loopback(args.host),
            f"refusing to serve on non-loopback host {args.host!r} without --allow-remote",
        ),
    ]
    for failed, message in problems:
        if failed:
            parser.print_usage(sys.stderr)
            print(f"{parser.prog}: error: {message}", file=sys.stderr)
            return 2
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s %(message)s")

    try:
        with _sigterm_as_interrupt():
            return _serve(parser.prog, args)
    except KeyboardInterrupt:
        return 0


def _serve(prog: str, args: argparse.Namespace) -> int:
    with contextlib.ExitStack() as stack:
        deliver = stack.enter_context(http_deliver())
        limits = SimulatorLimits(callback_ports=None) if args.any_callback_port else None
        sim = ThingSpaceSimulator(
            seed=args.seed,
            clock=WallClock(),
            request_delay=args.request_delay,
            deliver=deliver,
            callback_retry_interval=args.callback_retry_interval,
            limits=limits,
        )
        stack.callback(sim.close)
        sim.delivery_threads = args.delivery_threads
        population = sim.populate(args.account, args.devices, seed=args.seed)
        try:
            server = stack.enter_context(serve(sim, host=args.host, port=args.port, tick=args.tick))
        except OSError as error:
            print(f"{prog}: cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
            return 1
        if not _is_loopback(args.host):
            print(
                f"warning: serving on {args.host}; anyone who reaches it can use it",
                file=sys.stderr,
            )
        ports = "any port" if args.any_callback_port else "ThingSpace's listener ports only"
        env = sim.credentials.as_env()
        lines = [
            f"ThingSpace simulator listening on {server.url}",
            f"account {population.account}: {len(population.devices)} devices, "
            f"{len(population.spare_iccids)} spare ICCIDs, {len(population.spare_imeis)} spare "
            f"IMEIs (seed {args.seed})",
            f"requests stay Pending {args.request_delay:g} s; callbacks to {ports}",
            "simulator credentials:",
            *(f"export {name}={shlex.quote(value)}" for name, value in env.items()),
            "Ctrl-C or SIGTERM stops it.",
        ]
        print("\n".join(lines), flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("stopping", file=sys.stderr, flush=True)
    return 0


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt (only possible in the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


if __name__ == "__main__":
    sys.exit(main())
