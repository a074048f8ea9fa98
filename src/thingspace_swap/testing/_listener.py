"""Callbacks over real HTTP: a ``DeliverFn`` that POSTs them, and a listener that records them.

::

    with callback_listener() as listener:  # register listener.url as the CarrierService URL
        sim = ThingSpaceSimulator(deliver=http_deliver(), ...)
        ...
        bodies = listener.wait_for(1, timeout=5)
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx

from ._http_server import HttpRequest, HttpResponse, HttpServer, error_response

__all__ = [
    "CallbackListener",
    "HttpDeliver",
    "ReceivedCallback",
    "callback_listener",
    "http_deliver",
]

_log = logging.getLogger(__name__)


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
    """One POST a ``CallbackListener`` received, and the status it answered."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    status: int


class CallbackListener:
    """A loopback HTTP server that records the JSON bodies POSTed to it, until ``close``.

    Every path is accepted and answered 200 (empty body), unless ``answer_next`` queued
    other statuses. Everything is thread-safe.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._cond = threading.Condition()
        self._calls: list[ReceivedCallback] = []
        self._answers: collections.deque[int] = collections.deque()
        self._close_lock = threading.Lock()
        self._closed = False
        self._http = HttpServer(host, port, self._answer, name="callback-listener")

    @property
    def url(self) -> str:
        """The base URL to register, e.g. ``http://127.0.0.1:54322`` (any path works)."""
        return self._http.url

    @property
    def port(self) -> int:
        """The port bound."""
        return self._http.address[1]

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

    async def _answer(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return error_response(501, f"unsupported method {request.method!r}")
        try:
            body = json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            _log.warning("callback listener: %s is not a JSON object", request.target)
            content = json.dumps({"error": "the body must be a JSON object"}).encode()
            return HttpResponse(400, [("Content-Type", "application/json")], content)
        status = self._record(request.target, dict(request.headers), body)
        return HttpResponse(status, [])

    def _record(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> int:
        with self._cond:
            status = self._answers.popleft() if self._answers else 200
            self._calls.append(ReceivedCallback(path, headers, body, status))
            self._cond.notify_all()
            return status

    def close(self, timeout: float = 10.0) -> None:
        """Stop listening, hang up open connections and join the thread (idempotent)."""
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
    """A ``CallbackListener`` for the ``with`` block."""
    with CallbackListener(host=host, port=port) as listener:
        yield listener
