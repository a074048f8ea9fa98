"""``plans`` and ``devices``: the account's service plans and devices."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

from ..errors import CliError
from ..parsing import Commands, Parents, add_command

if TYPE_CHECKING:
    from ...models import Device
    from ..context import Context

__all__ = ["devices", "plans", "register"]

DEVICE_FIELDS = (
    "mdn",
    "iccid",
    "imei",
    "state",
    "plan",
    "groups",
    "connected",
    "last_activation",
    "created_at",
)


def register(commands: Commands, p: Parents) -> None:
    """Add ``plans`` and ``devices``."""
    add_command(
        commands,
        "plans",
        plans,
        help="list the account's service plans",
        examples="""\
  thingspace-swap plans --account 0000123456-00001
  thingspace-swap plans --config ~/.config/thingspace.toml --json
""",
        parents=[p.debug, p.connection, p.data, p.json],
    )
    parser = add_command(
        commands,
        "devices",
        devices,
        help="list the account's devices",
        examples="""\
  thingspace-swap devices --state active --limit 20
  thingspace-swap devices --plan M2M5MBSHR --group fleet-a --csv > fleet-a.csv
  thingspace-swap devices --limit 0 --json > all-devices.json
""",
        parents=[p.debug, p.connection, p.data],
    )
    parser.add_argument("--state", help="active, suspend, deactive, preactive...")
    parser.add_argument("--plan", help="service plan code")
    parser.add_argument("--group", help="device group name")
    parser.add_argument(
        "--limit", type=int, default=100, help="at most this many (default 100; 0: all)"
    )
    formats = parser.add_mutually_exclusive_group()
    formats.add_argument("--csv", action="store_true", help="CSV on stdout")
    formats.add_argument("--json", action="store_true", help="JSON on stdout")


def plans(ctx: Context) -> int:
    """``plans``: the account's service plans."""
    import attrs

    connection = ctx.connection()
    account = ctx.account(connection)
    with ctx.client(connection) as client:
        found = client.plans.list(account)
    records = [attrs.asdict(p) for p in found]
    if ctx.options.json:
        ctx.out.json(records)
        return 0
    ctx.out.table(
        ["code", "name", "size (KB)", "carrier plan code"],
        ([p.code, p.name, p.size_kb, p.carrier_service_plan_code] for p in found),
        title=f"service plans of {account}",
    )
    return 0


def _device_record(device: Device) -> dict[str, Any]:
    return {
        "mdn": device.mdn,
        "iccid": device.iccid,
        "imei": device.imei,
        "state": device.state,
        "plan": device.service_plan,
        "groups": " ".join(device.group_names),
        "connected": device.connected,
        "last_activation": device.last_activation_date,
        "created_at": device.created_at,
    }


def devices(ctx: Context) -> int:
    """``devices``: the account's devices, filtered."""
    options = ctx.options
    if options.limit < 0:
        raise CliError("--limit must not be negative", 2)
    filters: dict[str, Any] = {}
    for name, value in (
        ("current_state", options.state),
        ("service_plan", options.plan),
        ("group_name", options.group),
    ):
        if value:
            filters[name] = value
    connection = ctx.connection()
    account = ctx.account(connection)
    page = min(options.limit, 500) if options.limit else 500
    with ctx.client(connection) as client:
        listing = client.devices.iter(account_name=account, max_number_of_devices=page, **filters)
        found = list(itertools.islice(listing, options.limit or None))
    records = [_device_record(d) for d in found]
    if options.json:
        ctx.out.json(records)
    elif options.csv:
        ctx.out.csv(records, DEVICE_FIELDS)
    else:
        ctx.out.table(
            ["mdn", "iccid", "imei", "state", "plan", "groups"],
            ([r[k] for k in ("mdn", "iccid", "imei", "state", "plan", "groups")] for r in records),
            title=f"{len(records)} device(s) of {account}",
            caption=f"--limit {options.limit} reached" if len(records) == options.limit else None,
        )
    return 0
