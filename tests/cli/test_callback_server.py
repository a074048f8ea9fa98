"""``CallbackServer`` (the CLI's ``--listen``) on real loopback HTTP: closing it lets the
callback being handled finish before the store behind the intake is closed."""

from __future__ import annotations

import http.client
import json
import threading
import time

from tests.swap.test_callback_intake import PASSWORD, USER, callback
from thingspace_swap.cli.listener import CALLBACK_PATH, CallbackServer
from thingspace_swap.models import CarrierServiceCallback
from thingspace_swap.swap import CallbackIntake


def _post(connection: http.client.HTTPConnection) -> int:
    body = json.dumps(callback()).encode()
    connection.request(
        "POST", CALLBACK_PATH, body=body, headers={"Content-Type": "application/json"}
    )
    response = connection.getresponse()
    response.read()
    return response.status


def test_close_waits_for_the_callback_being_handled_and_refuses_later_ones() -> None:
    entered, release = threading.Event(), threading.Event()
    handled: list[str] = []

    def accept(cb: CarrierServiceCallback) -> str:
        entered.set()
        assert release.wait(10)
        handled.append(cb.request_id)
        return "applied"

    server = CallbackServer(CallbackIntake(accept, username=USER, password=PASSWORD))
    first = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    later = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    later.request("GET", "/healthz")  # an open keep-alive connection
    assert later.getresponse().read() == b'{"status":"ok"}'
    statuses: list[int] = []
    poster = threading.Thread(target=lambda: statuses.append(_post(first)))
    poster.start()
    assert entered.wait(10)
    closer = threading.Thread(target=server.close)
    closer.start()
    time.sleep(0.3)
    assert closer.is_alive()  # still waiting for the callback in hand
    assert _post(later) == 503  # closing: ThingSpace delivers it again later
    release.set()
    closer.join(10)
    poster.join(10)
    assert not closer.is_alive()
    first.close()
    later.close()
    assert statuses == [200]
    assert len(handled) == 1
