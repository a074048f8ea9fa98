"""``auth status`` and ``auth unblock``: the login guard in the token cache every run shares."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..figures import when
from ..parsing import Commands, Parents, add_command, add_group

if TYPE_CHECKING:
    from ...tokens import LoginBlock
    from ..context import Context

__all__ = ["auth_status", "auth_unblock", "describe_block", "register"]


def register(commands: Commands, p: Parents) -> None:
    """Add ``auth`` and its actions."""
    actions = add_group(
        commands,
        "auth",
        help="see or clear the login block shared by every run (after a refused login)",
        description="The ThingSpace login guard, kept in the token cache of the data folder "
        "(tokens.db) and shared by every run: after ThingSpace refuses a login (five failures "
        "lock the user), no run logs in again until the block is cleared.",
        examples="  thingspace-swap auth status\n"
        "  thingspace-swap auth unblock      # after fixing the credentials\n",
        debug=p.debug,
    )
    add_command(
        actions,
        "status",
        auth_status,
        help="whether logins are blocked, and what the token cache holds (never a token)",
        examples="  thingspace-swap auth status --json\n",
        parents=[p.debug, p.connection, p.data, p.json],
    )
    add_command(
        actions,
        "unblock",
        auth_unblock,
        help="clear the login block for every run and process sharing the token cache",
        examples="""\
  thingspace-swap auth unblock
  thingspace-swap auth unblock --data /srv/swap    # the cache of another data folder

Fix the credentials first: the next command that needs ThingSpace logs in once, and if that
login is refused too, logins are blocked again.
""",
        parents=[p.debug, p.connection, p.data, p.json],
    )


def describe_block(block: LoginBlock) -> str:
    """The block in words: why, since when (UTC) and set by whom."""
    return f"{block.reason} (since {when(block.since)} UTC, set by {block.by or 'unknown'})"


def _block_json(block: LoginBlock | None) -> dict[str, Any] | None:
    if block is None:
        return None
    return {
        "reason": block.reason,
        "code": block.code,
        "status_code": block.status_code,
        "since": when(block.since),
        "by": block.by,
    }


def auth_status(ctx: Context) -> int:
    """``auth status``: whether logins are blocked, and what the token cache holds (never a
    token)."""
    from ..._core.auth import cache_key

    connection = ctx.connection()
    cache = ctx.token_cache()
    record = cache.get(cache_key(connection.credentials))
    tokens = record.tokens
    now = ctx.clock.time()
    bearer_until = when(tokens.bearer_expires_at) if tokens.bearer_valid(now, 0) else None
    summary = {
        "user": connection.credentials.username,
        "token_cache": str(cache.path),
        "blocked": record.block is not None,
        "block": _block_json(record.block),
        "unconfirmed_logins": record.unconfirmed,
        "bearer_valid_until": bearer_until,
        "session_cached": tokens.session is not None,
        "login_in_progress": record.lease is not None and record.lease.until > now,
    }
    if ctx.options.json:
        ctx.out.json(summary)
        return 0
    user = connection.credentials.username
    if record.block is not None:
        ctx.out.print(f"logins are BLOCKED for {user}: {describe_block(record.block)}")
        ctx.out.print("fix the credentials, then run: thingspace-swap auth unblock")
    else:
        ctx.out.print(f"logins are allowed for {user}")
    if record.unconfirmed:
        ctx.out.print(f"logins of unknown outcome in a row: {record.unconfirmed}")
    bearer = f"valid until {bearer_until} UTC" if bearer_until else "none"
    session = "session cached" if tokens.session is not None else "no session"
    ctx.out.print(f"token cache {cache.path}: bearer {bearer}, {session}")
    return 0


def auth_unblock(ctx: Context) -> int:
    """``auth unblock``: clear the login block for every run and process sharing the cache."""
    connection = ctx.connection()
    with ctx.client(connection) as client:
        cleared = client.session.unblock()
    if ctx.options.json:
        ctx.out.json({"cleared": cleared is not None, "block": _block_json(cleared)})
        return 0
    if cleared is None:
        ctx.out.print(f"logins were not blocked for {connection.credentials.username}")
    else:
        ctx.out.print(f"cleared the login block: {describe_block(cleared)}")
        ctx.out.print("the next command that needs ThingSpace logs in once")
    return 0
