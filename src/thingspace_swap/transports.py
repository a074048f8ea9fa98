"""Transports to send the async client's requests through, besides httpx's own."""

from __future__ import annotations

import asyncio
import importlib
import ssl
from typing import Any

import httpx

__all__ = ["AiohttpTransport"]


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
