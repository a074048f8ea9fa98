"""The simulator over real HTTP on loopback, and a listener that receives its callbacks.

::

    with serve() as server:  # a WallClock simulator that POSTs its callbacks over HTTP
        server.sim.populate("0000123456-00001", 100)
        http = httpx.Client(base_url=server.url)
        ...

    with callback_listener() as listener:  # register listener.url as the CarrierService URL
        ...
        bodies = listener.wait_for(1, timeout=5)

Both servers are stdlib ``ThreadingHTTPServer``s speaking HTTP/1.1 with keep-alive, one thread
per connection; closing one shuts its open connections and joins every thread it started.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import socket
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import httpx

from ._clock import WallClock
from ._errors import Codes
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

#: The largest request body either server accepts (413 beyond).
_MAX_BODY = 32 * 1024 * 1024
#: Response headers the server writes itself (or must not forward).
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "content-length",
        "content-encoding",
    }
)
_JSON = [("Content-Type", "application/json")]


def _url(host: str, port: int) -> str:
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104 (mapped, not bound)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _hang_up(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# The HTTP server both servers share ---------------------------------------------------------


class _Server(ThreadingHTTPServer):
    """A ``ThreadingHTTPServer`` that tracks its connections and their threads.

    ``stop`` shuts the sockets of open (even idle keep-alive) connections, so joining their
    threads never waits on a client.
    """

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, host: str, port: int, handler: type[BaseHTTPRequestHandler]) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._lock = threading.Lock()
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._accepted = 0
        self._served = 0
        self._serving: threading.Thread | None = None
        super().__init__((host, port), handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would resolve the host's FQDN: a DNS lookup that can stall.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return _url(str(host), int(port))

    @property
    def counts(self) -> tuple[int, int]:
        with self._lock:
            return self._accepted, self._served

    def count_request(self) -> None:
        with self._lock:
            self._served += 1

    def start(self, name: str) -> None:
        self._serving = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True
        )
        self._serving.start()

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name=f"{self._serving.name if self._serving else 'http'}-conn",
            daemon=True,
        )
        with self._lock:
            self._accepted += 1
            self._connections[request] = thread
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            with self._lock:
                self._connections.pop(request, None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-response is no server error.
        _log.debug("connection from %s failed", client_address, exc_info=True)

    def stop(self, timeout: float) -> None:
        """Stop accepting, hang up every connection, join every thread, close the socket."""
        if self._serving is not None:
            self.shutdown()
            self._serving.join(timeout)
        with self._lock:
            connections = list(self._connections.items())
        for conn, _ in connections:
            _hang_up(conn)
        for _, thread in connections:
            thread.join(timeout)
            if thread.is_alive():
                _log.warning("%s still running after %s s", thread.name, timeout)
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive; every response has a Content-Length; logs go to DEBUG."""

    protocol_version = "HTTP/1.1"
    server_version = "ThingSpaceSimulator"
    sys_version = ""
    # One buffered write per response, sent at once: status line, headers and body in a single
    # segment, so Nagle + delayed ACK never add ~40 ms to a keep-alive round trip.
    wbufsize = -1
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("%s %s", self.address_string(), format % args)

    def handle_expect_100(self) -> bool:
        # The write buffer would hold "100 Continue" back until the final response.
        accepted = super().handle_expect_100()
        self.wfile.flush()
        return accepted

    def read_body(self) -> bytes:
        """The request body (Content-Length or chunked); raises ``_BadRequest``."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        declared = self.headers.get("Content-Length")
        if declared is None:
            return b""
        try:
            length = int(declared)
        except ValueError:
            raise _BadRequest(400, "invalid Content-Length") from None
        if length < 0:
            raise _BadRequest(400, "invalid Content-Length")
        if length > _MAX_BODY:
            raise _BadRequest(413, "request body too large")
        body = self.rfile.read(length)
        if len(body) < length:
            raise ConnectionError("client hung up mid-body")
        return body

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(65537)
            if not line:
                raise ConnectionError("client hung up mid-body")
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _BadRequest(400, "invalid chunk size") from None
            if size == 0:
                break
            total += size
            if total > _MAX_BODY:
                raise _BadRequest(413, "request body too large")
            chunk = self.rfile.read(size)
            if len(chunk) < size:
                raise ConnectionError("client hung up mid-body")
            chunks.append(chunk)
            self.rfile.readline(65537)  # the CRLF after the chunk
        while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
            pass  # trailers
        return b"".join(chunks)

    def send(self, status: int, headers: list[tuple[str, str]], content: bytes = b"") -> None:
        """Write a whole response, always with Content-Length (no body for HEAD)."""
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if content and self.command != "HEAD":
            self.wfile.write(content)

    def send_json(self, status: int, body: Any) -> None:
        self.send(status, _JSON, json.dumps(body).encode())

    def body_or_error(self) -> bytes | None:
        """The body, or None after answering/abandoning a request whose body is unusable."""
        try:
            return self.read_body()
        except _BadRequest as error:
            self.close_connection = True  # the rest of the stream cannot be trusted
            self.send_json(
                error.status, {"errorCode": Codes.REQUEST_INVALID, "errorMessage": error.message}
            )
        except ConnectionError:
            self.close_connection = True
        return None


# The simulator server ------------------------------------------------------------------------


class _SimulatorHTTP(_Server):
    def __init__(self, host: str, port: int, sim: ThingSpaceSimulator) -> None:
        self.sim = sim
        super().__init__(host, port, _SimulatorHandler)


class _SimulatorHandler(_Handler):
    server: _SimulatorHTTP

    def do_GET(self) -> None:
        self.server.count_request()
        body = self.body_or_error()
        if body is None:
            return
        try:
            request = self._request(body)
        except httpx.InvalidURL as error:
            self.close_connection = True
            self.send_json(400, {"errorCode": Codes.REQUEST_INVALID, "errorMessage": str(error)})
            return
        try:
            response = self.server.sim.handle(request)
            content = response.read()
        except httpx.TransportError as error:
            # Processed, but the answer is lost: hang up without one, like a dropped connection.
            _log.debug("%s %s: no response (%r)", self.command, self.path, error)
            self.close_connection = True
            return
        except Exception as error:
            _log.exception("simulator failed on %s %s", self.command, self.path)
            message = f"Simulator error: {type(error).__name__}: {error}"
            self.send_json(500, {"errorCode": Codes.UNEXPECTED, "errorMessage": message})
            return
        headers = [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in response.headers.raw
            if name.decode("latin-1").lower() not in _HOP_BY_HOP
        ]
        self.send(response.status_code, headers, content)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def _request(self, body: bytes) -> httpx.Request:
        if self.path.startswith(("http://", "https://")):
            url = httpx.URL(self.path)
        else:
            host = self.headers.get("Host") or self.server.url.partition("://")[2]
            try:
                url = httpx.URL(f"http://{host}{self.path}")
            except httpx.InvalidURL:
                url = httpx.URL(f"{self.server.url}{self.path}")
        headers = [
            (name.encode("latin-1"), str(value).encode("latin-1"))
            for name, value in self.headers.items()
            if name.lower() != "transfer-encoding"
        ]
        return httpx.Request(self.command, url, headers=headers, content=body)


class SimulatorServer:
    """``sim`` served over HTTP/1.1 on a background thread, until :meth:`close`.

    Each request becomes an ``httpx.Request`` for ``sim.handle``. An ``httpx.TransportError``
    from it (a "response lost" fault) closes the connection without a response; any other
    exception answers 500 with a JSON ``UnexpectedError`` and the server keeps going. A ticker
    thread calls ``sim.run_due()`` every ``tick`` seconds (None: never), so on a
    :class:`WallClock` pending requests complete and callbacks go out in real time.
    """

    def __init__(
        self,
        sim: ThingSpaceSimulator,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tick: float | None = 0.05,
    ) -> None:
        if tick is not None and tick <= 0:
            raise ValueError(f"tick must be positive or None, not {tick}")
        self.sim = sim
        self._http = _SimulatorHTTP(host, port, sim)
        self._tick = tick
        self._stopping = threading.Event()
        self._close_lock = threading.Lock()
        self._closed = False
        self._ticker: threading.Thread | None = None
        self._http.start(f"thingspace-sim:{self.port}")
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
        return int(self._http.server_address[1])

    @property
    def connections_accepted(self) -> int:
        """TCP connections accepted so far (keep-alive reuses one for many requests)."""
        return self._http.counts[0]

    @property
    def requests_received(self) -> int:
        """HTTP requests received so far."""
        return self._http.counts[1]

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
    :class:`WallClock` that delivers callbacks with :func:`http_deliver` to any port.
    """
    with contextlib.ExitStack() as stack:
        if sim is None:
            deliver = stack.enter_context(http_deliver())
            sim = ThingSpaceSimulator(
                clock=WallClock(), deliver=deliver, limits=SimulatorLimits(callback_ports=None)
            )
            stack.callback(sim.close)
        yield stack.enter_context(SimulatorServer(sim, host=host, port=port, tick=tick))


# Callback delivery over HTTP -----------------------------------------------------------------


class HttpDeliver:
    """A ``DeliverFn`` that POSTs each callback as JSON with its own ``httpx.Client``.

    Returns the listener's status; a connection error or timeout raises, which the simulator
    counts as a failed attempt. Proxy environment variables are ignored.
    """

    def __init__(self, timeout: float = 5.0) -> None:
        self._client = httpx.Client(
            timeout=timeout, trust_env=False, headers={"User-Agent": "thingspace-simulator"}
        )

    def __call__(self, url: str, body: dict[str, Any]) -> int:
        """POST ``body`` to ``url``; the response status."""
        return self._client.post(url, json=body).status_code

    def close(self) -> None:
        """Close the client's connections."""
        self._client.close()

    def __enter__(self) -> HttpDeliver:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def http_deliver(timeout: float = 5.0) -> HttpDeliver:
    """Callback delivery as real HTTP POSTs (close it, or use it as a context manager)."""
    return HttpDeliver(timeout)


# Callback listener ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedCallback:
    """One POST a :class:`CallbackListener` received, and the status it answered."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    status: int


class _ListenerHTTP(_Server):
    def __init__(self, host: str, port: int, listener: CallbackListener) -> None:
        self.listener = listener
        super().__init__(host, port, _ListenerHandler)


class _ListenerHandler(_Handler):
    server: _ListenerHTTP

    def do_POST(self) -> None:
        self.server.count_request()
        raw = self.body_or_error()
        if raw is None:
            return
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            _log.warning("callback listener: %s is not a JSON object", self.path)
            self.send_json(400, {"error": "the body must be a JSON object"})
            return
        status = self.server.listener._record(self.path, dict(self.headers.items()), body)
        self.send(status, [])


class CallbackListener:
    """A loopback HTTP server that records the JSON bodies POSTed to it, until :meth:`close`.

    Every path is accepted and answered 200 (empty body), unless :meth:`answer_next` queued
    other statuses. Everything is thread-safe.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._cond = threading.Condition()
        self._calls: list[ReceivedCallback] = []
        self._answers: collections.deque[int] = collections.deque()
        self._http = _ListenerHTTP(host, port, self)
        self._close_lock = threading.Lock()
        self._closed = False
        self._http.start(f"callback-listener:{self.port}")

    @property
    def url(self) -> str:
        """The base URL to register, e.g. ``http://127.0.0.1:54322`` (any path works)."""
        return self._http.url

    @property
    def port(self) -> int:
        """The port bound."""
        return int(self._http.server_address[1])

    @property
    def received(self) -> list[dict[str, Any]]:
        """A copy of the JSON bodies received so far, oldest first (failed answers included)."""
        with self._cond:
            return [call.body for call in self._calls]

    @property
    def calls(self) -> list[ReceivedCallback]:
        """A copy of every POST received so far, with the status it was answered."""
        with self._cond:
            return list(self._calls)

    def answer_next(self, status: int, count: int = 1) -> None:
        """Answer the next ``count`` POSTs with ``status`` (e.g. 500 to force a redelivery)."""
        if count < 0:
            raise ValueError("count must not be negative")
        with self._cond:
            self._answers.extend([status] * count)

    def wait_for(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Block until ``n`` bodies arrived; all of them so far. Raises ``TimeoutError``."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._calls) >= n, timeout):
                raise TimeoutError(
                    f"{len(self._calls)} of {n} callbacks arrived within {timeout} s"
                )
            return [call.body for call in self._calls]

    def clear(self) -> None:
        """Forget the bodies received and the queued answers."""
        with self._cond:
            self._calls.clear()
            self._answers.clear()

    def _record(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> int:
        with self._cond:
            status = self._answers.popleft() if self._answers else 200
            self._calls.append(ReceivedCallback(path, headers, body, status))
            self._cond.notify_all()
            return status

    def close(self, timeout: float = 10.0) -> None:
        """Stop listening and join every thread (idempotent)."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._http.stop(timeout)

    def __enter__(self) -> CallbackListener:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@contextlib.contextmanager
def callback_listener(*, host: str = "127.0.0.1", port: int = 0) -> Iterator[CallbackListener]:
    """A :class:`CallbackListener` for the ``with`` block."""
    with CallbackListener(host=host, port=port) as listener:
        yield listener
