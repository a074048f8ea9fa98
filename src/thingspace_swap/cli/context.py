"""What commands share: the outside world (a seam for tests), credentials, the client, the store."""

from __future__ import annotations

import getpass
import importlib
import ipaddress
import json
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from ..backends.sqlite import SqliteBackend
from ..backends.sqlite.tokens import SqliteTokenCache
from ..client import ThingSpaceClient
from ..clock import Clock, SystemClock
from ..config import PRODUCTION_URL, Credentials
from ..errors import ConfigurationError
from ..retry import RetryPolicy
from ..swap import LifecycleSettings, SwapOrchestrator
from .errors import CliError
from .output import Output

__all__ = [
    "STORE_NAME",
    "TOKENS_NAME",
    "Connection",
    "Context",
    "Runtime",
    "default_actor",
    "load_config",
]

ENV_ACCOUNT = "THINGSPACE_ACCOUNT"
ENV_BASE_URL = "THINGSPACE_BASE_URL"
ENV_DATA = "THINGSPACE_SWAP_DATA"
STORE_NAME = "swap.db"
#: The token cache beside the store: tokens and the login guard every CLI run shares.
TOKENS_NAME = "tokens.db"
_CREDENTIAL_KEYS = ("app_key", "app_secret", "username", "password")
_CONFIG_KEYS = frozenset({*_CREDENTIAL_KEYS, "account", "account_name", "base_url"})


@dataclass(frozen=True)
class Runtime:
    """The outside world of a command; tests swap parts of it.

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


def _check_base_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise CliError(f"--base-url must be an http(s) URL, not {url!r}", 2)
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise CliError(
            f"refusing to send credentials over plain HTTP to {parts.hostname}; use https", 2
        )
    return url.rstrip("/")


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Context:
    """One command's world: output, environment, clock, and the parsed options."""

    def __init__(self, runtime: Runtime, out: Output, options: Any) -> None:
        self.runtime = runtime
        self.out = out
        self.options = options
        self.environ = runtime.environ
        self.clock: Clock = runtime.clock or SystemClock()

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
        base_url = (
            getattr(self.options, "base_url", None)
            or config.get("base_url")
            or self.environ.get(ENV_BASE_URL)
            or PRODUCTION_URL
        )
        return Connection(credentials, account, _check_base_url(base_url))

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
            transport=self.runtime.transport,
            clock=self.clock,
            retry=self.runtime.retry or RetryPolicy(max_attempts=5),
            token_cache=self.token_cache(),
        )

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
