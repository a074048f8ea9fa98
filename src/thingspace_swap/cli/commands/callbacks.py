"""``callbacks register``, ``list`` and ``deregister``: where ThingSpace posts swap results."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import CliError
from ..parsing import Commands, Parents, add_command, add_group

if TYPE_CHECKING:
    from ..context import Context

__all__ = ["callbacks_deregister", "callbacks_list", "callbacks_register", "register"]


def register(commands: Commands, p: Parents) -> None:
    """Add ``callbacks`` and its actions."""
    actions = add_group(
        commands,
        "callbacks",
        help="register, list or deregister where ThingSpace posts swap results",
        description="Where ThingSpace posts CarrierService callbacks (the swap results).",
        examples="  thingspace-swap callbacks register"
        " https://swap.example.com:9001/thingspace/callbacks"
        " \\\n      --username cb --password-env CALLBACK_PASSWORD\n"
        "  thingspace-swap callbacks list\n"
        "  thingspace-swap callbacks deregister\n",
        debug=p.debug,
    )
    account = [p.debug, p.connection, p.data, p.json]
    parser = add_command(
        actions,
        "register",
        callbacks_register,
        help="register the CarrierService callback URL",
        examples="""\
  export CALLBACK_PASSWORD=$(openssl rand -base64 24)
  thingspace-swap callbacks register https://swap.example.com:9001/thingspace/callbacks \\
      --username cb --password-env CALLBACK_PASSWORD

ThingSpace signs nothing: the username and password come back in every callback body.
""",
        parents=account,
    )
    parser.add_argument("url", metavar="URL")
    parser.add_argument("--username", required=True, help="comes back in every callback")
    parser.add_argument(
        "--password-env",
        required=True,
        metavar="VAR",
        help="environment variable holding the password (never a command-line argument)",
    )
    add_command(
        actions,
        "list",
        callbacks_list,
        help="list the account's callback registrations",
        examples="  thingspace-swap callbacks list --json\n",
        parents=account,
    )
    parser = add_command(
        actions,
        "deregister",
        callbacks_deregister,
        help="remove a callback registration",
        examples="  thingspace-swap callbacks deregister --service CarrierService\n",
        parents=account,
    )
    parser.add_argument("--service", default="CarrierService", help="(%(default)s)")


def callbacks_register(ctx: Context) -> int:
    """``callbacks register``: where ThingSpace posts swap results (CarrierService)."""
    from ...models import CallbackService
    from ...swap import register_listener

    options = ctx.options
    password = ctx.environ.get(options.password_env)
    if not password:
        raise CliError(f"environment variable {options.password_env} is not set", 2)
    connection = ctx.connection()
    account = ctx.account(connection)
    with ctx.client(connection) as client:
        try:
            register_listener(client, options.url, username=options.username, password=password)
        except ValueError as error:
            raise CliError(str(error), 2) from None
    record = {
        "account": account,
        "service": CallbackService.CARRIER_SERVICE,
        "url": options.url,
        "username": options.username,
    }
    if options.json:
        ctx.out.json(record)
    else:
        ctx.out.print(
            f"registered {options.url} for {record['service']} on {account} "
            f"(username {options.username}; password from ${options.password_env})"
        )
    return 0


def callbacks_list(ctx: Context) -> int:
    """``callbacks list``: the account's registrations (never their passwords)."""
    connection = ctx.connection()
    account = ctx.account(connection)
    with ctx.client(connection) as client:
        found = client.callbacks.list(account)
    records = [{"service": r.service_name, "url": r.url, "username": r.username} for r in found]
    if ctx.options.json:
        ctx.out.json(records)
    elif not records:
        ctx.out.print(f"no callbacks registered on {account}")
    else:
        ctx.out.table(
            ["service", "url", "username"],
            ([r["service"], r["url"], r["username"]] for r in records),
            title=f"callbacks of {account}",
        )
    return 0


def callbacks_deregister(ctx: Context) -> int:
    """``callbacks deregister``: remove a service's registration."""
    options = ctx.options
    connection = ctx.connection()
    account = ctx.account(connection)
    with ctx.client(connection) as client:
        client.callbacks.deregister(options.service, account_name=account)
    if options.json:
        ctx.out.json({"account": account, "service": options.service, "deregistered": True})
    else:
        ctx.out.print(f"deregistered {options.service} on {account}")
    return 0
