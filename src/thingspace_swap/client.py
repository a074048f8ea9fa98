"""``ThingSpaceClient`` and ``AsyncThingSpaceClient``: one engine, two drivers."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from types import TracebackType
from typing import Generic, TypeVar

import httpx

from ._clear_text import refuse_clear_text
from ._core.auth import LOGIN_LEASE, AuthState
from ._core.endpoint import Async, Mode, Sync
from ._core.engine import Engine, RequestEvent
from ._drivers import AsyncDriver, SyncDriver
from .clock import Clock, SystemClock
from .config import Credentials, default_base_url
from .errors import ConfigurationError, ThingSpaceError
from .ratelimit import RateLimit, RateLimiter
from .resources import Accounts, Callbacks, Devices, Plans, Requests, Session
from .retry import RetryPolicy
from .tokens import InMemoryTokenCache, TokenCache
from .transports import AiohttpTransport

__all__ = ["AiohttpTransport", "AsyncThingSpaceClient", "ThingSpaceClient"]

logger = logging.getLogger("thingspace_swap")

Http = TypeVar("Http", httpx.Client, httpx.AsyncClient)
Transport = TypeVar("Transport", httpx.BaseTransport, httpx.AsyncBaseTransport)
Runner = TypeVar("Runner", SyncDriver, AsyncDriver)


class _Client(Generic[Mode, Http, Transport, Runner]):
    """What both clients share: settings, the engine and the resources."""

    devices: Devices[Mode]
    """[Devices][thingspace_swap.resources.Devices]: `get`, `list`, `iter`, `change_identifier`,
    `activate`, `suspend`, `restore`, `deactivate`, `change_plan`, `delete`, `history`."""
    plans: Plans[Mode]
    """[Plans][thingspace_swap.resources.Plans]: `list`."""
    accounts: Accounts[Mode]
    """[Accounts][thingspace_swap.resources.Accounts]: `get`."""
    requests: Requests[Mode]
    """[Requests][thingspace_swap.resources.Requests]: `status`."""
    callbacks: Callbacks[Mode]
    """[Callbacks][thingspace_swap.resources.Callbacks]: `register`, `list`, `deregister`."""
    session: Session[Mode]
    """[Session][thingspace_swap.resources.Session]: `login`, `unblock`, `blocked`, `logout`."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        account_name: str | None = None,
        base_url: str | None = None,
        transport: Transport | None = None,
        http_client: Http | None = None,
        timeout: float | httpx.Timeout = 30.0,
        retry: RetryPolicy | None = None,
        rate_limit: float | RateLimit | None = None,
        token_cache: TokenCache | None = None,
        on_request: Callable[[RequestEvent], None] | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """Create a client.

        Args:
            credentials: App key/secret and UWS username/password.
            account_name: The default account for calls that need one.
            base_url: Staging or a simulator; by default $THINGSPACE_BASE_URL when set, else
                production.
            transport: An httpx transport to send through (e.g. the simulator's).
            http_client: An httpx client to use as is (not closed by this client).
            timeout: Seconds, or an ``httpx.Timeout``.
            retry: The ``RetryPolicy`` (default: 4 attempts, jittered backoff).
            rate_limit: Requests per second, or a shared limit (a ``RateLimiter``, or one
                shared by processes such as ``SqliteRateLimiter``); off by default.
            token_cache: Where tokens and the login guard are shared with other clients
                (threads, processes, invocations): while a refused login's block is set there,
                no client sharing it logs in, and closing this client leaves the shared
                session open. Default: this client's own ``InMemoryTokenCache``.
            on_request: Called with a ``RequestEvent`` after every attempt.
            clock: Time and sleeping (inject a virtual clock in tests).
            rng: Random source for retry jitter.
        """
        self.credentials = credentials
        self.account_name = account_name
        clock = clock or SystemClock()
        lease = _login_lease(http_client.timeout if http_client else timeout)
        engine = Engine(
            base_url=(base_url or default_base_url()).rstrip("/"),
            auth=AuthState(credentials, cache=_checked_cache(token_cache), login_lease=lease),
            retry=retry or RetryPolicy(),
            clock=clock,
            rng=rng or random.Random(),
            limiter=_limiter(rate_limit, clock),
            on_request=on_request,
        )
        #: A session shared through a given cache stays open on close: other clients use it
        #: (ThingSpace ends it after 20 idle minutes); ``session.logout()`` still ends it.
        self._shares_session = token_cache is not None
        self._http: Http = self._connect(http_client, transport, timeout, engine.base_url)
        self._engine = engine
        self._driver: Runner = self._new_driver(self._http, engine, clock)
        self._attach(self._driver, engine, account_name)

    @property
    def driver(self) -> Runner:
        """What runs this client's flows: ``driver.run(flow)`` returns the flow's result (sync
        client) or a coroutine (async client). For composing resource methods' flows
        (``Devices.get.flow(client.devices, ref)``) into a larger flow, as the swap
        orchestrator does."""
        return self._driver

    def _connect(
        self,
        http_client: Http | None,
        transport: Transport | None,
        timeout: float | httpx.Timeout,
        base_url: str,
    ) -> Http:
        """The httpx client to send through: the caller's, or one of ours (closed with us)."""
        self._owns_http = http_client is None
        http = http_client or self._open_http(transport, timeout)
        try:
            refuse_clear_text(http, base_url)
        except ConfigurationError:
            if self._owns_http and isinstance(http, httpx.Client):
                http.close()  # nothing was sent (an async client holds nothing yet)
            raise
        return http

    def _attach(self, driver: Runner, engine: Engine, account_name: str | None) -> None:
        """The resources, whose methods ``driver`` runs."""
        self.devices = Devices(driver, engine, account_name)
        self.plans = Plans(driver, engine, account_name)
        self.accounts = Accounts(driver, engine, account_name)
        self.requests = Requests(driver, engine, account_name)
        self.callbacks = Callbacks(driver, engine, account_name)
        self.session = Session(driver, engine, account_name)

    def _open_http(self, transport: Transport | None, timeout: float | httpx.Timeout) -> Http:
        raise NotImplementedError

    def _new_driver(self, http: Http, engine: Engine, clock: Clock) -> Runner:
        raise NotImplementedError

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self._engine.base_url!r}, "
            f"app_key={self.credentials.app_key!r}, username={self.credentials.username!r}, "
            f"account_name={self.account_name!r})"
        )


class ThingSpaceClient(_Client[Sync, httpx.Client, httpx.BaseTransport, SyncDriver]):
    """The blocking client; safe to share between threads.

    Example:
        ```python
        with ThingSpaceClient(Credentials.from_env(), account_name="0000123456-00001") as ts:
            for device in ts.devices.iter(current_state="active"):
                print(device.iccid, device.service_plan)
        ```
    """

    def _open_http(
        self, transport: httpx.BaseTransport | None, timeout: float | httpx.Timeout
    ) -> httpx.Client:
        return httpx.Client(transport=transport, timeout=timeout)

    def _new_driver(self, http: httpx.Client, engine: Engine, clock: Clock) -> SyncDriver:
        return SyncDriver(http, engine, clock)

    def close(self) -> None:
        """Log out of the M2M session (best effort; not when a ``token_cache`` shares it with
        other clients) and close the connection pool."""
        try:
            if not self._shares_session:
                self.session.logout()
        except ThingSpaceError as exc:
            logger.warning("logout on close failed: %s", exc)
        finally:
            if self._owns_http:
                self._http.close()

    def __enter__(self) -> ThingSpaceClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncThingSpaceClient(
    _Client[Async, httpx.AsyncClient, httpx.AsyncBaseTransport, AsyncDriver]
):
    """The asyncio client, with the same resources as
    [ThingSpaceClient][thingspace_swap.ThingSpaceClient].

    Example:
        ```python
        async with AsyncThingSpaceClient(creds, account_name="0000123456-00001") as ts:
            plans = await ts.plans.list()
        ```
    """

    def _open_http(
        self, transport: httpx.AsyncBaseTransport | None, timeout: float | httpx.Timeout
    ) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=transport, timeout=timeout)

    def _new_driver(self, http: httpx.AsyncClient, engine: Engine, clock: Clock) -> AsyncDriver:
        return AsyncDriver(http, engine, clock)

    async def aclose(self) -> None:
        """Log out of the M2M session (best effort; not when a ``token_cache`` shares it with
        other clients) and close the connection pool."""
        try:
            if not self._shares_session:
                await self.session.logout()
        except ThingSpaceError as exc:
            logger.warning("logout on close failed: %s", exc)
        finally:
            if self._owns_http:
                await self._http.aclose()

    async def __aenter__(self) -> AsyncThingSpaceClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _login_lease(timeout: float | httpx.Timeout) -> float:
    """How long other clients wait for this one's login before presuming it gone: long enough
    for its two requests at most (a login, and a login again after renewing the bearer)."""
    limits = timeout.as_dict().values() if isinstance(timeout, httpx.Timeout) else (timeout,)
    longest = max((t for t in limits if t is not None), default=None)
    return LOGIN_LEASE if longest is None else max(LOGIN_LEASE, 3 * longest + 30)


def _limiter(rate_limit: float | RateLimit | None, clock: Clock) -> RateLimit | None:
    """``rate_limit``: a shared limiter as is, or one of this many requests per second."""
    if isinstance(rate_limit, (int, float)):
        return RateLimiter(int(rate_limit), clock=clock)
    return rate_limit


def _checked_cache(cache: TokenCache | None) -> TokenCache:
    """``cache``, or a new in-memory one; refuses an object that is not a
    [TokenCache][thingspace_swap.tokens.TokenCache]."""
    if cache is None:
        return InMemoryTokenCache()
    missing = [name for name in ("get", "update") if not callable(getattr(cache, name, None))]
    if missing:
        methods = " or ".join(f"{name}()" for name in missing)
        raise ConfigurationError(
            f"token_cache {type(cache).__name__} has no {methods}: a TokenCache keeps the login "
            "guard besides the tokens (load/store alone are not enough); use "
            "InMemoryTokenCache, SqliteTokenCache or DynamoTokenCache (see docs/authentication.md)"
        )
    return cache
