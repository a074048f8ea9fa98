"""The two drivers: the only code that does I/O. Each runs flows from :mod:`._core` against an
httpx client, sleeping on the injected clock and holding the auth lock for ``Exclusive``."""

from __future__ import annotations

import asyncio
import importlib
import ssl
import threading
import urllib.request
from collections.abc import AsyncIterator, Iterator
from typing import Any, Protocol, TypeVar

import httpcore
import httpx

from ._core.commands import Exclusive, Flow, Send, Sleep
from ._core.endpoint import Pager
from ._core.engine import Engine
from ._core.operations import Call
from .clock import Clock
from .config import _loopback
from .errors import InsecureTransportError

T = TypeVar("T")
Item = TypeVar("Item")

_PROXY_POOLS = (
    httpcore.HTTPProxy,
    httpcore.AsyncHTTPProxy,
    httpcore.SOCKSProxy,
    httpcore.AsyncSOCKSProxy,
)
_NETWORK = (httpx.HTTPTransport, httpx.AsyncHTTPTransport)
_POOLS = (httpcore.ConnectionPool, httpcore.AsyncConnectionPool)


def refuse_clear_text(http: httpx.Client | httpx.AsyncClient, base_url: str) -> None:
    """Raise :class:`InsecureTransportError` when ``http`` would carry the credentials of
    requests to ``base_url`` in clear text beyond this machine.

    Every request carries a credential (the app secret, the password or the tokens), so a plain
    ``http`` base URL is allowed only to a loopback host, sent directly: never through a proxy,
    which would read the request whatever the proxy's own scheme. An ``https`` base URL is always
    fine: httpx tunnels it through a proxy with ``CONNECT`` and TLS runs end to end, so the proxy
    sees only the host and port. The proxy is the one httpx itself picks for the URL: from the
    environment (``HTTP_PROXY``, ``ALL_PROXY``, ``NO_PROXY``... when ``trust_env``), or from a
    client's ``proxy=`` or ``mounts=``. A transport of the caller's (the simulator's, a mock)
    reaches no network and is left alone.
    """
    url = httpx.URL(base_url)
    if url.scheme != "http":
        return
    transport, proxy = _route(http, url)
    if proxy is not None:
        via = f"the proxy {proxy}" if proxy else "a proxy"
        raise InsecureTransportError(
            f"refusing to send credentials through {via} in clear text: {url.host} is plain "
            f"http, so the proxy would read the app secret, the password and the tokens; use "
            f"https, or reach {url.host} directly (add it to NO_PROXY)",
            proxy=proxy or None,
        )
    if isinstance(transport, _NETWORK) and not _loopback(url.host):
        raise InsecureTransportError(
            f"refusing plain http to {url.host}: credentials would be sent unencrypted; use https"
        )


def _route(http: httpx.Client | httpx.AsyncClient, url: httpx.URL) -> tuple[object, str | None]:
    """The transport ``http`` sends ``url``'s requests through, and the proxy on the way
    (``""`` when its URL is unknown; None when there is none)."""
    route = getattr(http, "_transport_for_url", None)
    if not callable(route):  # a future httpx: judge from the environment, conservatively
        return None, _environment_proxy(url) if http.trust_env else None
    transport = route(url)
    pool = getattr(transport, "_pool", None)
    if isinstance(pool, _PROXY_POOLS):
        return transport, _describe(getattr(pool, "_proxy_url", None))
    if isinstance(transport, _NETWORK) and not isinstance(pool, _POOLS):
        return transport, _environment_proxy(url) if http.trust_env else None
    return transport, None


def _describe(proxy: Any) -> str:
    """A proxy's ``scheme://host:port``, never its user or password ('' when unknown)."""
    try:
        scheme, host, port = proxy.scheme.decode(), proxy.host.decode(), proxy.port
    except (AttributeError, UnicodeDecodeError):
        return ""
    return f"{scheme}://{host}" + (f":{port}" if port else "")


def _environment_proxy(url: httpx.URL) -> str | None:
    """The proxy the environment names for ``url``, unless ``NO_PROXY`` is ``*`` or names its
    host exactly (stricter than httpx, for when httpx cannot be asked)."""
    proxies = urllib.request.getproxies()
    proxy = proxies.get(url.scheme) or proxies.get("all")
    bypass = {host.strip().lower() for host in proxies.get("no", "").split(",")}
    if not proxy or "*" in bypass or url.host.lower() in bypass:
        return None
    try:
        parsed = httpx.URL(proxy if "://" in proxy else f"http://{proxy}")
    except httpx.InvalidURL:
        return ""
    return f"{parsed.scheme}://{parsed.host}" + (f":{parsed.port}" if parsed.port else "")


class Driver(Protocol):
    def run(self, flow: Flow[Any]) -> Any: ...
    def iterate(self, pager: Pager[Any, Any]) -> Any: ...


class SyncDriver:
    """Runs flows on a thread: ``httpx.Client``, ``clock.sleep`` and a ``threading.Lock``."""

    def __init__(self, http: httpx.Client, engine: Engine, clock: Clock) -> None:
        self._http = http
        self._engine = engine
        self._clock = clock
        self._lock = threading.Lock()

    def run(self, flow: Flow[T]) -> T:
        reply: Any = None
        error: Exception | None = None
        while True:
            try:
                command = flow.send(reply) if error is None else flow.throw(error)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            reply, error = None, None
            try:
                if isinstance(command, Send):
                    reply = self._http.send(command.request)
                elif isinstance(command, Sleep):
                    self._clock.sleep(command.seconds)
                else:
                    assert isinstance(command, Exclusive)
                    with self._lock:
                        reply = self.run(command.flow)
            except Exception as exc:  # handed to the flow, which decides
                error = exc

    def iterate(self, pager: Pager[Any, Item]) -> Iterator[Item]:
        call: Call[Any] | None = pager.first
        while call is not None:
            page = self.run(self._engine.call(call))
            yield from pager.items(page)
            call = pager.next_call(call, page)


class AsyncDriver:
    """Runs flows on an event loop: ``httpx.AsyncClient``, ``sleep_async``, ``asyncio.Lock``."""

    def __init__(self, http: httpx.AsyncClient, engine: Engine, clock: Clock) -> None:
        self._http = http
        self._engine = engine
        self._clock = clock
        self._lock = asyncio.Lock()

    async def run(self, flow: Flow[T]) -> T:
        reply: Any = None
        error: Exception | None = None
        while True:
            try:
                command = flow.send(reply) if error is None else flow.throw(error)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            reply, error = None, None
            try:
                if isinstance(command, Send):
                    reply = await self._http.send(command.request)
                elif isinstance(command, Sleep):
                    await self._clock.sleep_async(command.seconds)
                else:
                    assert isinstance(command, Exclusive)
                    async with self._lock:
                        reply = await self.run(command.flow)
            except Exception as exc:  # handed to the flow, which decides
                error = exc

    async def iterate(self, pager: Pager[Any, Item]) -> AsyncIterator[Item]:
        call: Call[Any] | None = pager.first
        while call is not None:
            page = await self.run(self._engine.call(call))
            for item in pager.items(page):
                yield item
            call = pager.next_call(call, page)


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An ``httpx`` async transport that sends through ``aiohttp`` (optional; ``pip install
    aiohttp``): ``AsyncThingSpaceClient(credentials, transport=AiohttpTransport())``.

    httpx's own async connection pool costs about twice the CPU per call of its sync one, and more
    under concurrency; aiohttp's C HTTP parser and pool cost less. The client above it is
    unchanged: retries, auth, rate limit and ``on_request`` behave as with httpx's transport,
    because this transport keeps what they rely on:

    * aiohttp's failures become the httpx errors that say the same thing: only a failure to
      connect (or to get a pooled connection in time) is ``httpx.ConnectError`` /
      ``httpx.ConnectTimeout`` ("nothing was sent"); anything after that is a read, write or
      protocol error, so a state-changing call is never resent after an unknown outcome;
    * aiohttp's own silent resend of PUT/DELETE on a dropped keep-alive connection is turned off;
    * no cookie jar, no automatic ``Accept-Encoding`` and no decompression: httpx does those.

    Args:
        max_connections: Connections in the pool (aiohttp's ``limit``).
        keepalive_expiry: Seconds an idle connection is kept.
        ssl_context: A caller's own ``ssl.SSLContext`` (e.g. a private CA); by default httpx's
            verifying context. There is no way to turn verification off.
    """

    def __init__(
        self,
        *,
        max_connections: int = 100,
        keepalive_expiry: float = 15.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        try:  # an optional dependency: imported by name so type checkers need not have it
            aiohttp = importlib.import_module("aiohttp")
            yarl = importlib.import_module("yarl")
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("AiohttpTransport needs aiohttp: pip install aiohttp") from exc
        self._aiohttp: Any = aiohttp
        self._url: Any = yarl.URL
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._ssl_context = ssl_context
        self._session: Any = None
        self._timeouts: dict[tuple[Any, ...], Any] = {}
        # The most specific class first: the first match decides. Only the first two say that
        # nothing was sent (the client may then resend even a swap).
        pairs = (
            ("ConnectionTimeoutError", httpx.ConnectTimeout),
            ("ClientConnectorError", httpx.ConnectError),
            ("ServerTimeoutError", httpx.ReadTimeout),
            ("ClientPayloadError", httpx.ReadError),
            ("ServerDisconnectedError", httpx.RemoteProtocolError),
            ("ClientResponseError", httpx.RemoteProtocolError),
            ("ClientOSError", httpx.WriteError),
            ("InvalidURL", httpx.UnsupportedProtocol),
            ("ClientError", httpx.TransportError),
        )
        self._error_map: list[tuple[type[BaseException], type[httpx.TransportError]]] = [
            (getattr(aiohttp, name), target) for name, target in pairs if hasattr(aiohttp, name)
        ]
        self._error_map.append((asyncio.TimeoutError, httpx.ReadTimeout))

    def _open(self) -> Any:
        aiohttp = self._aiohttp
        ssl_context = self._ssl_context or httpx.create_ssl_context()
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            keepalive_timeout=self._keepalive_expiry,
            ssl=ssl_context,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("Accept-Encoding",),
            auto_decompress=False,
            trust_env=False,
        )
        if not hasattr(session, "_retry_connection"):
            raise RuntimeError(
                f"aiohttp {aiohttp.__version__} cannot be told not to resend a request on a "
                "dropped keep-alive connection; AiohttpTransport needs aiohttp >= 3.10"
            )
        # Resending is the client's decision (RetryPolicy), never aiohttp's: it would resend a
        # swap (PUT) that ThingSpace may already have processed.
        session._retry_connection = False
        self._session = session
        return session

    def _timeout(self, timeout: Any) -> Any:
        key = (timeout.get("connect"), timeout.get("read"), timeout.get("pool"))
        cached = self._timeouts.get(key)
        if cached is None:
            connect, read, pool = key
            cached = self._aiohttp.ClientTimeout(
                total=None, connect=pool, sock_connect=connect, sock_read=read
            )
            self._timeouts[key] = cached
        return cached

    def _map_error(self, error: BaseException) -> httpx.TransportError:
        for source, target in self._error_map:
            if isinstance(error, source):
                return target(f"{type(error).__name__}: {error}")
        return httpx.TransportError(f"{type(error).__name__}: {error}")  # pragma: no cover

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session or self._open()
        try:
            content = request.content
        except httpx.RequestNotRead:
            content = await request.aread()
        try:
            async with session.request(
                request.method,
                self._url(str(request.url), encoded=True),
                headers=request.headers.multi_items(),
                data=content or None,
                allow_redirects=False,
                timeout=self._timeout(request.extensions.get("timeout", {})),
            ) as response:
                body = await response.read()
                status, raw_headers, reason = response.status, response.raw_headers, response.reason
        except (self._aiohttp.ClientError, asyncio.TimeoutError) as error:
            raise self._map_error(error) from error
        extensions: dict[str, Any] = {"http_version": b"HTTP/1.1"}
        if reason:
            extensions["reason_phrase"] = reason.encode("latin-1", "replace")
        return httpx.Response(
            status, headers=list(raw_headers), content=body, extensions=extensions
        )

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()
