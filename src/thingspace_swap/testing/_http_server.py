"""A small HTTP/1.1 server: one asyncio event loop on one background thread, stdlib only.

Every connection is a task on the loop; requests on it are read, answered and written in order
(keep-alive, ``Content-Length`` or chunked request bodies, ``Expect: 100-continue``). Answers
always carry a ``Content-Length``. The handler is a coroutine function; it runs on the loop, so
it must not block it (hand blocking work to an executor).

Why not ``h11``: a port to it was measured at about twice the CPU per request (roughly +95 µs,
h11's own parsing and framing), and this server's cost is what the client benchmarks subtract
from the machine; the protocol subset a simulator needs is small and tested here directly.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from http import HTTPStatus
from typing import NamedTuple

from ._errors import Codes

__all__ = ["MAX_BODY", "HttpRequest", "HttpResponse", "HttpServer", "error_response"]

_log = logging.getLogger(__name__)

#: The largest request body accepted (413 beyond).
MAX_BODY = 32 * 1024 * 1024
#: The largest request head (request line and headers), and the most header lines.
_MAX_HEAD = 64 * 1024
_MAX_HEADERS = 100
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_SERVER = "Server: ThingSpaceSimulator\r\n"


class HttpRequest(NamedTuple):
    """One request: ``headers`` as received (names in their own case), the whole body."""

    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The last value of header ``name`` (case-insensitive), or None."""
        name = name.lower()
        found = None
        for key, value in self.headers:
            if key.lower() == name:
                found = value
        return found


class HttpResponse(NamedTuple):
    """What to answer; ``close`` ends the connection after it."""

    status: int
    headers: list[tuple[str, str]]
    content: bytes = b""
    close: bool = False


#: Answers a request; None hangs up without an answer (a lost response).
Handler = Callable[[HttpRequest], Awaitable["HttpResponse | None"]]


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_response(status: int, message: str, *, close: bool = False) -> HttpResponse:
    """A JSON ``{"errorCode": "REQUEST_INVALID"...}`` answer (``UnexpectedError`` for 5xx)."""
    code = Codes.UNEXPECTED if status >= 500 else Codes.REQUEST_INVALID
    body = json.dumps({"errorCode": code, "errorMessage": message}).encode()
    return HttpResponse(status, [("Content-Type", "application/json")], body, close)


class HttpServer:
    """Serves ``handler`` on ``(host, port)`` from a thread ``{name}:{port}``, until ``stop``.

    The socket is bound before the constructor returns (an ``OSError`` such as "address in
    use" is raised there). ``accepted`` and ``served`` count connections and requests.
    """

    def __init__(self, host: str, port: int, handler: Handler, *, name: str) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.create_server((host, port), family=family, backlog=128)
        self._handler = handler
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._date = (0, "")
        self.address: tuple[str, int] = self._sock.getsockname()[:2]
        self.accepted = 0
        self.served = 0
        started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._run, args=(started,), name=f"{name}:{self.address[1]}", daemon=True
        )
        self._thread.start()
        try:
            started.result()
        except BaseException:
            self._thread.join()
            raise

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:54321`` (a wildcard host as its loopback)."""
        host, port = self.address
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104 (mapped, not bound)
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    # The loop's thread ----------------------------------------------------------------------

    def _run(self, started: concurrent.futures.Future[None]) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        try:
            self._server = loop.run_until_complete(
                asyncio.start_server(self._connection, sock=self._sock, limit=_MAX_HEAD)
            )
        except BaseException as error:
            self._sock.close()
            loop.close()
            started.set_exception(error)
            return
        started.set_result(None)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task, writer in list(self._connections.items()):
            writer.transport.abort()  # hang up, even mid-request
            task.cancel()
        if self._connections:
            await asyncio.wait(list(self._connections), timeout=5)
        if self._server is not None:
            await self._server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        self.accepted += 1
        peer = writer.get_extra_info("peername")
        try:
            while await self._exchange(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            _log.debug("connection from %s dropped", peer)
        except asyncio.CancelledError:
            _log.debug("connection from %s hung up by stop()", peer)
        except Exception:
            _log.exception("connection from %s failed", peer)
        finally:
            del self._connections[task]
            writer.transport.close()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Read one request and answer it; False when the connection is done."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False  # the client closed the connection (between requests, or mid-head)
        except asyncio.LimitOverrunError:
            self._write(writer, "GET", error_response(431, "request head too large", close=True))
            return False
        try:
            request_line, headers = _parse_head(head)
            if not request_line:
                return True  # empty lines between requests
            method, target, version = request_line
            keep_alive = _keep_alive(version, headers)
            self.served += 1
            body = await self._body(reader, writer, version, headers)
        except _BadRequest as error:
            # The rest of the stream cannot be trusted: answer and hang up.
            self._write(writer, "GET", error_response(error.status, error.message, close=True))
            return False
        response = await self._handler(HttpRequest(method, target, version, headers, body))
        if response is None:
            return False
        close = response.close or not keep_alive
        self._write(writer, method, response._replace(close=close))
        if writer.transport.get_write_buffer_size() > 65536:
            await writer.drain()
        return not close

    async def _body(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        version: str,
        headers: list[tuple[str, str]],
    ) -> bytes:
        encoding = length = expect = None
        for name, value in headers:
            lower = name.lower()
            if lower == "transfer-encoding":
                encoding = value.lower()
            elif lower == "content-length":
                length = value
            elif lower == "expect":
                expect = value.lower()
        chunked = encoding is not None and "chunked" in encoding
        size = 0
        if not chunked and length is not None:
            try:
                size = int(length)
            except ValueError:
                raise _BadRequest(400, "invalid Content-Length") from None
            if size < 0:
                raise _BadRequest(400, "invalid Content-Length")
            if size > MAX_BODY:
                raise _BadRequest(413, "request body too large")
        if expect is not None and version != "HTTP/1.0":
            if expect != "100-continue":
                raise _BadRequest(417, f"unsupported Expect: {expect}")
            writer.write(_CONTINUE)
        if chunked:
            return await _read_chunked(reader)
        return await reader.readexactly(size) if size else b""

    def _write(self, writer: asyncio.StreamWriter, method: str, response: HttpResponse) -> None:
        """Status line, headers and body in one write (one segment on the wire)."""
        status, headers, content, close = response
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        now = int(time.time())
        if self._date[0] != now:
            self._date = (now, formatdate(now, usegmt=True))
        lines = [f"HTTP/1.1 {status} {phrase}\r\n", f"{_SERVER}Date: {self._date[1]}\r\n"]
        lines += [f"{name}: {value}\r\n" for name, value in headers]
        lines.append(f"Content-Length: {len(content)}\r\n")
        if close:
            lines.append("Connection: close\r\n")
        lines.append("\r\n")
        data = "".join(lines).encode("latin-1")
        writer.write(data + content if content and method != "HEAD" else data)

    # Other threads --------------------------------------------------------------------------

    def stop(self, timeout: float) -> None:
        """Stop accepting, hang up every connection, stop the loop and join its thread."""
        if self._loop.is_closed():
            return
        done = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        try:
            done.result(timeout)
        except Exception:
            _log.warning("HTTP server did not shut down cleanly", exc_info=True)
        with contextlib.suppress(RuntimeError):  # the loop is closed already
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        if self._thread.is_alive():
            _log.warning("%s still running after %s s", self._thread.name, timeout)


def _parse_head(head: bytes) -> tuple[tuple[str, str, str] | None, list[tuple[str, str]]]:
    """The request line (None for a blank head) and the headers; raises ``_BadRequest``."""
    lines = head.decode("latin-1").split("\r\n")
    while lines and not lines[0]:
        lines.pop(0)  # blank lines before a request line are ignored (RFC 9112 §2.2)
    if not lines:
        return None, []
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise _BadRequest(400, f"bad request line {lines[0][:100]!r}")
    if parts[2] not in ("HTTP/1.1", "HTTP/1.0"):
        raise _BadRequest(505, f"unsupported HTTP version {parts[2][:20]!r}")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t":  # an obsolete folded continuation line
            if not headers:
                raise _BadRequest(400, "bad header line")
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}")
            continue
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise _BadRequest(400, f"bad header line {line[:100]!r}")
        headers.append((name, value.strip()))
    if len(headers) > _MAX_HEADERS:
        raise _BadRequest(431, "too many headers")
    return (parts[0], parts[1], parts[2]), headers


def _keep_alive(version: str, headers: list[tuple[str, str]]) -> bool:
    tokens = {
        token.strip().lower()
        for name, value in headers
        if name.lower() == "connection"
        for token in value.split(",")
    }
    if "close" in tokens:
        return False
    return version == "HTTP/1.1" or "keep-alive" in tokens


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.LimitOverrunError:
            raise _BadRequest(400, "invalid chunk size") from None
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise _BadRequest(400, "invalid chunk size") from None
        if size < 0:
            raise _BadRequest(400, "invalid chunk size")
        if size == 0:
            break
        total += size
        if total > MAX_BODY:
            raise _BadRequest(413, "request body too large")
        chunks.append(await reader.readexactly(size))
        await reader.readuntil(b"\n")  # the CRLF after the chunk
    while (await reader.readuntil(b"\n")).strip():
        pass  # trailers
    return b"".join(chunks)
