"""A small stdlib HTTP server that hands ThingSpace's callbacks to a
[CallbackIntake][thingspace_swap.swap.CallbackIntake]."""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from ..swap import CallbackIntake, CallbackResponse

__all__ = ["CallbackServer"]

_log = logging.getLogger("thingspace_swap.cli.listener")
CALLBACK_PATH = "/thingspace/callbacks"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "thingspace-swap"
    sys_version = ""
    timeout = 15  # idle keep-alive connections are dropped after this many seconds
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("%s %s", self.address_string(), format % args)

    def _answer(self, response: CallbackResponse, *, close: bool = False) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(response.body)

    def do_GET(self) -> None:
        status = 200 if self.path == "/healthz" else 404
        body = b'{"status":"ok"}' if status == 200 else b'{"error":"not found"}'
        self._answer(CallbackResponse(status, body))

    def do_POST(self) -> None:
        intake = self.server.intake
        if self.path.split("?", 1)[0] != self.server.path:
            self._answer(CallbackResponse(404, b'{"error":"not found"}'), close=True)
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if length < 0:
            self._answer(CallbackResponse(400, b'{"error":"bad Content-Length"}'), close=True)
            return
        source = self.client_address[0] if self.client_address else None
        refused = intake.precheck(source, length)
        if refused is not None:
            self._answer(refused, close=True)
            return
        body = self.rfile.read(length)
        if not self.server.begin():  # closing: ThingSpace delivers it again later
            self._answer(CallbackResponse(503, b'{"error":"shutting down"}'), close=True)
            return
        try:
            answer = intake.handle(body, dict(self.headers.items()), source)
        finally:
            self.server.end()
        self._answer(answer)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], intake: CallbackIntake, path: str) -> None:
        self.intake = intake
        self.path = path
        self._handling = 0
        self._closing = False
        self._idle = threading.Condition()
        super().__init__(address, _Handler)

    def begin(self) -> bool:
        """Count a callback handed to the intake; False once closing."""
        with self._idle:
            if self._closing:
                return False
            self._handling += 1
            return True

    def end(self) -> None:
        with self._idle:
            self._handling -= 1
            self._idle.notify_all()

    def drain(self, timeout: float) -> None:
        """Take no more callbacks and wait (at most ``timeout`` seconds) for those the intake
        is handling: their connections' threads are daemons, and the store the intake writes
        to is closed after this."""
        with self._idle:
            self._closing = True
            self._idle.wait_for(lambda: self._handling == 0, timeout)

    def handle_error(self, request: Any, client_address: Any) -> None:
        _log.debug("callback connection from %s failed", client_address, exc_info=True)


class CallbackServer:
    """``intake`` served over HTTP at ``path`` on a background thread, until ``close``.

    ``POST path`` answers what [CallbackIntake.handle][thingspace_swap.swap.CallbackIntake.handle]
    answers; ``GET /healthz`` 200.
    """

    def __init__(
        self,
        intake: CallbackIntake,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = CALLBACK_PATH,
    ) -> None:
        self._server = _Server((host, port), intake, path)
        self.path = path
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"callback-server:{self.port}",
            daemon=True,
        )
        self._thread.start()

    @property
    def port(self) -> int:
        """The port bound (the real one when 0 was asked for)."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The URL to register with ThingSpace (for a loopback or explicitly bound host)."""
        host = str(self._server.server_address[0])
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}{self.path}"

    def close(self) -> None:
        """Stop serving, let the callbacks being handled finish (at most 10 s) and close the
        socket; later callbacks on open connections are answered 503."""
        self._server.drain(10.0)
        self._server.shutdown()
        self._thread.join(10)
        self._server.server_close()

    def __enter__(self) -> CallbackServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
