"""The callback intake as a framework-free ASGI 3 app (serve it with any ASGI server).

```python
from thingspace_swap.asgi import asgi_app
from thingspace_swap.swap import CallbackIntake

app = asgi_app(CallbackIntake(orchestrator.accept_callback, username="u", password=secret))
```
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from typing import Any

from .swap.callbacks import CallbackIntake, CallbackResponse, json_response

__all__ = ["ASGIApp", "asgi_app"]


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_HEALTH_PATH = "/healthz"
_NOT_ALLOWED = {"error": "method not allowed"}


async def _respond(
    send: Send,
    response: CallbackResponse,
    extra: Sequence[tuple[bytes, bytes]] = (),
    *,
    head: bool = False,
) -> None:
    headers = [
        (b"content-type", response.content_type.encode("latin-1")),
        (b"content-length", str(len(response.body)).encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else response.body})


async def _read_body(receive: Receive, cap: int) -> tuple[bytes, bool] | None:
    """The body, and whether it stayed within ``cap`` (reading stops as soon as it does not);
    None when the client went away."""
    parts = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        if message["type"] != "http.request":
            continue
        parts += message.get("body", b"")
        if len(parts) > cap:
            return bytes(parts), False
        if not message.get("more_body", False):
            return bytes(parts), True


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _declared_length(headers: Mapping[str, str]) -> int:
    """The declared Content-Length (0 if absent or not a number; the read cap still holds)."""
    value = headers.get("content-length", "").strip()
    if not (value.isascii() and value.isdigit()):
        return 0
    return int(value) if len(value) <= 18 else 10**18


def asgi_app(intake: CallbackIntake, *, path: str = "/thingspace/callbacks") -> ASGIApp:
    """A framework-free ASGI 3 app: ``POST path`` ->
    [CallbackIntake.handle][thingspace_swap.swap.CallbackIntake.handle], ``GET /healthz`` -> 200,
    other paths 404, other methods 405.

    The source address is ``scope["client"]`` (behind a proxy, that is the proxy: configure
    the server's forwarded-address handling or leave the allow-list off). The body is read
    with a running size cap, so an oversize body is refused without buffering it all; the
    intake (which may do blocking store I/O) runs in a worker thread (asyncio servers).
    """

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        method, route = str(scope.get("method", "GET")).upper(), scope.get("path", "")
        if route == _HEALTH_PATH:
            if method in ("GET", "HEAD"):
                await _respond(send, json_response(200, {"status": "ok"}), head=method == "HEAD")
            else:
                allow = [(b"allow", b"GET, HEAD")]
                await _respond(send, json_response(405, _NOT_ALLOWED), allow)
            return
        if route != path:
            await _respond(send, json_response(404, {"error": "not found"}))
            return
        if method != "POST":
            await _respond(send, json_response(405, _NOT_ALLOWED), [(b"allow", b"POST")])
            return
        client = scope.get("client")
        source = str(client[0]) if client else None
        headers = {
            bytes(k).decode("latin-1").lower(): bytes(v).decode("latin-1")
            for k, v in scope.get("headers", ())
        }
        # Refuse what needs no body before reading it (unread bodies: close the connection).
        refused = intake.precheck(source, _declared_length(headers))
        if refused is not None:
            await _respond(send, refused, [(b"connection", b"close")])
            return
        read = await _read_body(receive, intake.max_bytes)
        if read is None:
            return  # the client went away: nothing to answer
        body, within = read
        if not within:
            await _respond(send, intake.handle(body, headers, source), [(b"connection", b"close")])
            return
        await _respond(send, await asyncio.to_thread(intake.handle, body, headers, source))

    return app
