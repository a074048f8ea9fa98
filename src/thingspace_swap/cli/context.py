"""What commands share: the outside world (a seam for tests), credentials, the client, the store."""

from __future__ import annotations

import getpass
import importlib
import json
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ..backends.sqlite import SqliteBackend
from ..backends.sqlite.ratelimit import SqliteRateLimiter
from ..backends.sqlite.tokens import SqliteTokenCache
from ..client import ThingSpaceClient
from ..clock import Clock, SystemClock
from ..config import Credentials, check_base_url, default_base_url
from ..errors import ConfigurationError
from ..retry import RetryPolicy
from ..swap import LifecycleSettings, SwapOrchestrator
from .errors import CliError
from .output import Output

__all__ = [
    "STORE_NAME",
    "TOKENS_NAME",
    "CliEnvironment",
    "Connection",
    "Context",
    "default_actor",
    "load_config",
]

ENV_ACCOUNT = "THINGSPACE_ACCOUNT"
ENV_DATA = "THINGSPACE_SWAP_DATA"
STORE_NAME = "swap.db"
#: The token cache beside the store: tokens and the login guard every CLI run shares.
TOKENS_NAME = "tokens.db"
RATE_LIMIT_NAME = "ratelimit.db"
_CREDENTIAL_KEYS = ("app_key", "app_secret", "username", "password")
_CONFIG_KEYS = frozenset({*_CREDENTIAL_KEYS, "account", "account_name", "base_url"})


@dataclass(frozen=True)
class CliEnvironment:
    """The outside world a command runs in; tests swap parts of it.

    ``transport`` replaces the network (e.g. a simulator's in-process transport), ``clock`` the
    real time (e.g. the simulator's virtual clock: worker loops then wait instantly) and
    ``retry`` the client's retry policy.
    """

    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    transport: httpx.BaseTransport | None = None
    clock: Clock | None = None
    retry: RetryPolicy | None = None


@dataclass(frozen=True)
class Connection:
    """Where and as whom to talk to ThingSpace."""

    credentials: Credentials
    account: str | None
    base_url: str


def load_config(path: Path) -> dict[str, str]:
    """The settings in a TOML or JSON file (values are never echoed in errors)."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror or error}", 2) from None
    if path.suffix.lower() == ".json":
        try:
            data: Any = json.loads(raw)
        except ValueError as error:
            raise CliError(f"{path} is not valid JSON ({type(error).__name__})", 2) from None
    else:
        data = _toml(path, raw)
    if isinstance(data, dict) and isinstance(data.get("thingspace"), dict):
        data = data["thingspace"]  # an optional [thingspace] table
    if not isinstance(data, dict):
        raise CliError(f"{path} must hold a table of settings", 2)
    unknown = sorted(set(data) - _CONFIG_KEYS)
    if unknown:
        raise CliError(f"{path}: unknown setting(s) {', '.join(unknown)}", 2)
    bad = sorted(k for k, v in data.items() if not isinstance(v, str))
    if bad:
        raise CliError(f"{path}: setting(s) {', '.join(bad)} must be strings", 2)
    return {str(k): str(v) for k, v in data.items()}


def _toml(path: Path, raw: bytes) -> Any:
    for name in ("tomllib", "tomli"):
        try:
            module: Any = importlib.import_module(name)
        except ImportError:
            continue
        try:
            return module.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as error:
            # the parser's message quotes no values, only positions
            raise CliError(f"{path} is not valid TOML ({type(error).__name__})", 2) from None
    raise CliError("TOML needs Python 3.11+ or the tomli package; use a .json file instead", 2)


def default_actor(environ: Mapping[str, str]) -> str:
    """Who runs the command, for the audit trail: ``user@host``."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = environ.get("USER") or "unknown"
    return f"{user}@{socket.gethostname()}"


class Context:
    """One command's world: output, environment, clock, and the parsed options."""

    def __init__(self, environment: CliEnvironment, out: Output, options: Any) -> None:
        self.environment = environment
        self.out = out
        self.options = options
        self.environ = environment.environ
        self.clock: Clock = environment.clock or SystemClock()

    # ThingSpace ----------------------------------------------------------------------------

    def connection(self) -> Connection:
        """Credentials, account and base URL: flags, then ``--config``, then the environment."""
        config_path = getattr(self.options, "config", None)
        config = load_config(Path(config_path)) if config_path else {}
        given = [k for k in _CREDENTIAL_KEYS if config.get(k)]
        if given:
            missing = [k for k in _CREDENTIAL_KEYS if not config.get(k)]
            if missing:
                raise CliError(f"{config_path}: missing setting(s) {', '.join(missing)}", 2)
            credentials = Credentials(*(config[k] for k in _CREDENTIAL_KEYS))
        else:
            try:
                credentials = Credentials.from_env(self.environ)
            except ConfigurationError as error:
                raise CliError(f"{error.message} (or pass --config FILE)", 2) from None
        account = (
            getattr(self.options, "account", None)
            or config.get("account")
            or config.get("account_name")
            or self.environ.get(ENV_ACCOUNT)
        )
        return Connection(credentials, account, self._base_url(config, config_path))

    def _base_url(self, config: Mapping[str, str], config_path: str | None) -> str:
        """``--base-url``, else the config file's, else ``default_base_url``; each checked
        by ``check_base_url`` (its error names where the URL came from)."""
        flag = getattr(self.options, "base_url", None)
        if flag:
            return check_base_url(flag, name="--base-url")
        if config.get("base_url"):
            return check_base_url(config["base_url"], name=f"{config_path}: base_url")
        return default_base_url(self.environ)

    def account(self, connection: Connection) -> str:
        """The account to work on, or a usage error naming how to give one."""
        if not connection.account:
            raise CliError(f"no account: pass --account or set {ENV_ACCOUNT}", 2)
        return connection.account

    def client(self, connection: Connection) -> ThingSpaceClient:
        """A client for ``connection`` (close it when done), sharing tokens and the login
        guard with every other run through the data folder's token cache."""
        return ThingSpaceClient(
            connection.credentials,
            account_name=connection.account,
            base_url=connection.base_url,
            transport=self.environment.transport,
            clock=self.clock,
            retry=self.environment.retry or RetryPolicy(max_attempts=5),
            token_cache=self.token_cache(),
            rate_limit=self.rate_limit(connection),
        )

    def rate_limit(self, connection: Connection) -> SqliteRateLimiter | None:
        """``--rate-limit N``: one limit for the account, kept in the data folder, so every
        run and worker on this machine stays under N requests a second together."""
        rate = getattr(self.options, "rate_limit", None)
        if rate is None:
            return None
        path = self.data_dir() / RATE_LIMIT_NAME
        return SqliteRateLimiter(path, rate=rate, key=connection.account or "", clock=self.clock)

    def token_cache(self) -> SqliteTokenCache:
        """The SQLite token cache in the data folder (readable by its owner only): separate
        runs share the login block there, so a wrong password fails one login, not one a run."""
        return SqliteTokenCache(self.data_dir() / TOKENS_NAME, clock=self.clock)

    # The store -----------------------------------------------------------------------------

    def data_dir(self) -> Path:
        """``--data``, else ``$THINGSPACE_SWAP_DATA``, else ``~/.thingspace-swap``: the swap
        store and the token cache."""
        given = getattr(self.options, "data", None) or self.environ.get(ENV_DATA)
        return Path(given).expanduser() if given else Path.home() / ".thingspace-swap"

    def open_store(self, *, create: bool) -> SqliteBackend:
        """The SQLite store in the data folder; without ``create`` it must exist already."""
        folder = self.data_dir()
        path = folder / STORE_NAME
        if not create and not path.is_file():
            raise CliError(f"no swap store at {path} (pass --data DIR)", 2)
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as error:
            raise CliError(f"cannot create {folder}: {error.strerror or error}", 2) from None
        return SqliteBackend(path, clock=self.clock)

    def orchestrator(
        self,
        backend: SqliteBackend,
        client: ThingSpaceClient | None = None,
        settings: LifecycleSettings | None = None,
    ) -> SwapOrchestrator:
        """An orchestrator on ``backend``; without a client it can only touch the store."""
        return SwapOrchestrator(
            client if client is not None else _offline_client(),
            queue=backend.queue,
            store=backend.store,
            settings=settings,
            clock=self.clock,
        )


def _refuse(request: httpx.Request) -> httpx.Response:
    raise RuntimeError("this command works on the local store only")  # never reached


def _offline_client() -> ThingSpaceClient:
    """A client that never connects: for orchestrator calls that touch only the store."""
    offline = Credentials("offline", "offline", "offline", "offline")
    return ThingSpaceClient(
        offline, base_url="https://offline.invalid", transport=httpx.MockTransport(_refuse)
    )
