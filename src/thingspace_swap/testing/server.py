"""The simulator over real HTTP on loopback, and (from ``_listener``) a callback listener.

::

    with serve() as server:  # a WallClock simulator that POSTs its callbacks over HTTP
        server.sim.populate("0000123456-00001", 100)
        http = httpx.Client(base_url=server.url)
        ...

    with callback_listener() as listener:  # register listener.url as the CarrierService URL
        ...
        bodies = listener.wait_for(1, timeout=5)

Both servers speak HTTP/1.1 with keep-alive from one asyncio event loop on one background
thread (every connection a task on it, not a thread), so many connections cost little; closing
one hangs up its open connections and joins every thread it started.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Iterator
from types import TracebackType

import httpx

from ._clock import WallClock
from ._exchange import ARRIVED_AT
from ._http_server import HttpRequest, HttpResponse, HttpServer, error_response
from ._listener import (
    CallbackListener,
    HttpDeliver,
    ReceivedCallback,
    callback_listener,
    http_deliver,
)
from ._rules import SimulatorLimits
from .simulator import ThingSpaceSimulator

__all__ = [
    "CallbackListener",
    "HttpDeliver",
    "ReceivedCallback",
    "SimulatorServer",
    "callback_listener",
    "http_deliver",
    "serve",
]

_log = logging.getLogger(__name__)

#: Response headers the server writes itself (or must not forward).
_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"te",
        b"trailer",
        b"upgrade",
        b"content-length",
        b"content-encoding",
        b"date",
        b"server",
    }
)


# The simulator server ------------------------------------------------------------------------


class SimulatorServer:
    """``sim`` served over HTTP/1.1 on a background thread, until
    [close][thingspace_swap.testing.SimulatorServer.close].

    Each request becomes an ``httpx.Request`` for ``sim.handle``. An ``httpx.TransportError``
    from it (a "response lost" fault) closes the connection without a response; any other
    exception answers 500 with a JSON ``UnexpectedError`` and the server keeps going. A ticker
    thread calls ``sim.run_due()`` every ``tick`` seconds (None: never), so on a
    ``WallClock`` pending requests complete and callbacks go out in real time.

    ``sim.handle`` runs on the server's event loop, except while it may block: when ``sim``
    delivers callbacks (``sim.deliver`` is set) or its faults add latency, it runs on a worker
    thread. ``latency`` holds every response back that many seconds without holding a thread
    (a network round trip, for benchmarks); 0 by default.
    """

    def __init__(
        self,
        sim: ThingSpaceSimulator,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tick: float | None = 0.05,
        latency: float = 0.0,
    ) -> None:
        if tick is not None and tick <= 0:
            raise ValueError(f"tick must be positive or None, not {tick}")
        if not latency >= 0:
            raise ValueError(f"latency must not be negative, not {latency}")
        self.sim = sim
        self._tick = tick
        self._latency = latency
        self._stopping = threading.Event()
        self._close_lock = threading.Lock()
        self._closed = False
        self._ticker: threading.Thread | None = None
        self._workers: concurrent.futures.ThreadPoolExecutor | None = None
        self._urls: dict[tuple[str | None, str], httpx.URL] = {}
        self._http = HttpServer(host, port, self._answer, name="thingspace-sim")
        if tick is not None:
            self._ticker = threading.Thread(
                target=self._run_ticker, name=f"thingspace-sim:{self.port}-ticker", daemon=True
            )
            self._ticker.start()

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:54321``."""
        return self._http.url

    @property
    def port(self) -> int:
        """The port bound (the real one when 0 was asked for)."""
        return self._http.address[1]

    @property
    def connections_accepted(self) -> int:
        """TCP connections accepted so far (keep-alive reuses one for many requests)."""
        return self._http.accepted

    @property
    def requests_received(self) -> int:
        """HTTP requests received so far."""
        return self._http.served

    # On the server's event loop ---------------------------------------------------------------

    async def _answer(self, request: HttpRequest) -> HttpResponse | None:
        arrived = self.sim.clock.monotonic()
        try:
            sim_request = self._request(request)
        except httpx.InvalidURL as error:
            return error_response(400, str(error), close=True)
        # the rate limit and the busiest second count arrivals, not when a thread got to them
        sim_request.extensions[ARRIVED_AT] = arrived
        faults = self.sim.faults
        if self.sim.deliver is None and not (faults.latency or faults.latency_jitter):
            response = self._handle(sim_request)
        else:  # it may block (a delivery, a latency fault): not on the loop
            if self._workers is None:
                self._workers = concurrent.futures.ThreadPoolExecutor(
                    32, thread_name_prefix=f"thingspace-sim:{self.port}-worker"
                )
            loop = asyncio.get_running_loop()
            response = await loop.run_in_executor(self._workers, self._handle, sim_request)
        if self._latency:
            await asyncio.sleep(self._latency)
        return response

    def _handle(self, request: httpx.Request) -> HttpResponse | None:
        try:
            response = self.sim.handle(request)
            content = response.read()
        except httpx.TransportError as error:
            # Processed, but the answer is lost: hang up without one, like a dropped connection.
            _log.debug("%s %s: no response (%r)", request.method, request.url, error)
            return None
        except Exception as error:
            _log.exception(
                "simulator failed on %s %s", request.method, request.url.raw_path.decode()
            )
            message = f"Simulator error: {type(error).__name__}: {error}"
            return error_response(500, message)
        headers = [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in response.headers.raw
            if name.lower() not in _HOP_BY_HOP
        ]
        return HttpResponse(response.status_code, headers, content)

    def _request(self, request: HttpRequest) -> httpx.Request:
        """The ``httpx.Request`` for ``sim.handle``, with the headers httpx itself would add."""
        host = None
        length = False
        headers: list[tuple[bytes, bytes]] = []
        for name, value in request.headers:
            lower = name.lower()
            if lower == "transfer-encoding":
                continue
            if lower == "host":
                host = value
            elif lower == "content-length":
                length = True
            headers.append((name.encode("latin-1"), value.encode("latin-1")))
        url = self._url_of(host, request.target)
        body = request.body
        if not length and (body or request.method in ("POST", "PUT", "PATCH")):
            headers.insert(0, (b"Content-Length", str(len(body)).encode()))
        if host is None and url.host:
            headers.insert(0, (b"Host", url.netloc))
        # A ready stream skips httpx's body encoding (the body is bytes already).
        sim_request = httpx.Request(
            request.method, url, headers=headers, stream=httpx.ByteStream(body)
        )
        sim_request.read()
        return sim_request

    def _url_of(self, host: str | None, target: str) -> httpx.URL:
        """The request's URL; parsed once per (Host, target) pair (most calls repeat a few)."""
        key = (host, target)
        url = self._urls.get(key)
        if url is None:
            if target.startswith(("http://", "https://")):
                url = httpx.URL(target)
            else:
                authority = host or self.url.partition("://")[2]
                try:
                    url = httpx.URL(f"http://{authority}{target}")
                except httpx.InvalidURL:
                    url = httpx.URL(f"{self.url}{target}")
            if len(self._urls) >= 512:
                self._urls.clear()
            self._urls[key] = url
        return url

    # Other threads ------------------------------------------------------------------------------

    def _run_ticker(self) -> None:
        assert self._tick is not None
        while not self._stopping.wait(self._tick):
            try:
                self.sim.run_due()
            except Exception:
                _log.exception("sim.run_due() failed")

    def close(self, timeout: float = 10.0) -> None:
        """Stop serving, hang up open connections and join every thread (idempotent)."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._stopping.set()
        self._http.stop(timeout)
        if self._workers is not None:
            self._workers.shutdown(wait=True, cancel_futures=True)
        if self._ticker is not None:
            self._ticker.join(timeout)

    def __enter__(self) -> SimulatorServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@contextlib.contextmanager
def serve(
    sim: ThingSpaceSimulator | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    tick: float | None = 0.05,
) -> Iterator[SimulatorServer]:
    """Serve ``sim`` over HTTP for the ``with`` block.

    Without ``sim``, serves (and afterwards closes) a new ``ThingSpaceSimulator`` on a
    ``WallClock`` that delivers callbacks with ``http_deliver`` to any port.
    """
    with contextlib.ExitStack() as stack:
        if sim is None:
            deliver = stack.enter_context(http_deliver())
            sim = ThingSpaceSimulator(
                clock=WallClock(), deliver=deliver, limits=SimulatorLimits(callback_ports=None)
            )
            stack.callback(sim.close)
        yield stack.enter_context(SimulatorServer(sim, host=host, port=port, tick=tick))
