"""The HTTP server under ``serve``/``SimulatorServer``/``callback_listener``: one event loop, many
connections, held-back responses, blocking simulator work off the loop, and the raw protocol."""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
from typing import Any

import httpx
import pytest
from sim_helpers import ACCOUNT, M2M, TOKEN_PATH

from thingspace_swap.testing import (
    Faults,
    SimulatorServer,
    ThingSpaceSimulator,
    WallClock,
    callback_listener,
    serve,
)

BASIC = "Basic c2ltLWFwcC1rZXk6c2ltLWFwcC1zZWNyZXQ="  # sim-app-key:sim-app-secret
TOKEN_BODY = b"grant_type=client_credentials"


pytestmark = pytest.mark.usefixtures("no_leaked_threads")


def token_request(host: str = "sim", extra: bytes = b"") -> bytes:
    return (
        b"POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n%s\r\n%s"
        % (TOKEN_PATH.encode(), host.encode(), BASIC.encode(), len(TOKEN_BODY), extra, TOKEN_BODY)
    )


def read_all(raw: socket.socket) -> bytes:
    reply = b""
    while chunk := raw.recv(65536):
        reply += chunk
    return reply


async def _tokens(url: str, n: int) -> list[int]:
    limits = httpx.Limits(max_connections=n)
    async with httpx.AsyncClient(base_url=url, trust_env=False, limits=limits) as http:
        replies = await asyncio.gather(
            *(
                http.post(
                    TOKEN_PATH,
                    auth=("sim-app-key", "sim-app-secret"),
                    data={"grant_type": "client_credentials"},
                    timeout=10,
                )
                for _ in range(n)
            )
        )
    return [r.status_code for r in replies]


def test_many_connections_share_one_thread() -> None:
    baseline = threading.active_count()
    with serve(ThingSpaceSimulator(seed=1), tick=None) as server:  # no deliver: all on the loop
        assert threading.active_count() == baseline + 1  # the event loop's thread, nothing else
        assert asyncio.run(_tokens(server.url, 200)) == [200] * 200
        assert server.connections_accepted == 200
        assert server.requests_received == 200
        assert threading.active_count() == baseline + 1


def test_a_simulator_that_delivers_is_served_from_a_bounded_pool() -> None:
    baseline = threading.active_count()
    with serve(tick=None) as server:  # deliver=http_deliver(): sim.handle may block
        assert asyncio.run(_tokens(server.url, 100)) == [200] * 100
        assert baseline + 1 < threading.active_count() <= baseline + 1 + 32


def test_latency_holds_responses_back_without_holding_the_server() -> None:
    sim = ThingSpaceSimulator(seed=1)
    with SimulatorServer(sim, tick=None, latency=0.3) as server:
        started = time.monotonic()
        assert asyncio.run(_tokens(server.url, 20)) == [200] * 20
        elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 2.0  # 20 answers 0.3 s late, all at once (not 6 s in a row)
    with pytest.raises(ValueError, match="latency"):
        SimulatorServer(sim, latency=-1)


def test_a_latency_fault_on_a_wall_clock_does_not_block_other_requests() -> None:
    sim = ThingSpaceSimulator(seed=1, clock=WallClock(), faults=Faults(latency=0.3))
    with serve(sim, tick=None) as server:
        started = time.monotonic()
        assert asyncio.run(_tokens(server.url, 8)) == [200] * 8
        elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 2.0  # slept on worker threads, side by side


def test_a_delivery_may_call_the_server_back() -> None:
    """``deliver`` runs off the loop, so a listener that calls the simulator cannot stall it."""
    seen: list[int] = []
    with serve(tick=None) as server, httpx.Client(base_url=server.url, trust_env=False) as http:

        def deliver(url: str, body: dict[str, Any]) -> int:
            reply = http.post(
                TOKEN_PATH,
                auth=("sim-app-key", "sim-app-secret"),
                data={"grant_type": "client_credentials"},
                timeout=5,
            )
            seen.append(reply.status_code)
            return 200

        sim = server.sim
        sim.deliver = deliver
        sim.request_delay = 0  # the callback goes out while the swap's request is answered
        population = sim.populate(ACCOUNT, 4, seed=1, n_spare_sims=1)
        device = next(d for d in population.devices if d.state == "active" and d.mdn)
        creds = sim.credentials
        bearer = http.post(
            TOKEN_PATH,
            auth=(creds.app_key, creds.app_secret),
            data={"grant_type": "client_credentials"},
        ).json()["access_token"]
        http.headers["Authorization"] = f"Bearer {bearer}"
        login = {"username": creds.username, "password": creds.password}
        http.headers["VZ-M2M-Token"] = http.post(f"{M2M}/session/login", json=login).json()[
            "sessionToken"
        ]
        body = {"name": "CarrierService", "url": "http://127.0.0.1:9/cb"}
        assert http.post(f"{M2M}/callbacks/{ACCOUNT}", json=body).status_code == 200
        swap = {
            "deviceIds": [{"id": device.iccid, "kind": "iccid"}],
            "deviceIdsTo": [{"id": population.spare_iccids[0], "kind": "iccid"}],
            "change4gOption": "ChangeICCID",
        }
        started = time.monotonic()
        response = http.put(f"{M2M}/devices/4G/actions/deviceId", json=swap, timeout=10)
        assert response.status_code == 200, response.text
        assert time.monotonic() - started < 3
    assert seen == [200]  # one callback, its listener got its answer from the server


def test_pipelined_requests_are_answered_in_order() -> None:
    with serve(tick=None) as server, socket.create_connection(("127.0.0.1", server.port)) as raw:
        raw.settimeout(5)
        raw.sendall(
            b"GET /one HTTP/1.1\r\nHost: sim\r\n\r\n"
            + token_request()
            + b"GET /three HTTP/1.1\r\nHost: sim\r\nConnection: close\r\n\r\n"
        )
        reply = read_all(raw)
    statuses = [int(status) for status in re.findall(rb"HTTP/1\.1 (\d{3}) ", reply)]
    assert statuses == [404, 200, 404]
    assert reply.count(b"Content-Length: ") == 3
    assert server.requests_received == 3


@pytest.mark.parametrize(
    ("request_bytes", "status", "message"),
    [
        (b"POST /x HTTP/1.1\r\nHost: s\r\nContent-Length: 40000000\r\n\r\n", 413, b"too large"),
        (
            b"POST /x HTTP/1.1\r\nHost: s\r\nTransfer-Encoding: chunked\r\n\r\n2000001\r\n",
            413,
            b"too large",
        ),
        (b"POST /x HTTP/1.1\r\nHost: s\r\nContent-Length: -1\r\n\r\n", 400, b"Content-Length"),
        (b"NONSENSE\r\n\r\n", 400, b"bad request line"),
        (b"GET / HTTP/2.0\r\nHost: s\r\n\r\n", 505, b"version"),
        (b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", 400, b"bad header"),
        (b"GET / HTTP/1.1\r\nHost: s\r\nExpect: magic\r\n\r\n", 417, b"Expect"),
    ],
)
def test_unusable_requests_are_answered_then_hung_up(
    request_bytes: bytes, status: int, message: bytes
) -> None:
    with serve(tick=None) as server, socket.create_connection(("127.0.0.1", server.port)) as raw:
        raw.settimeout(5)
        raw.sendall(request_bytes)
        reply = read_all(raw)
    assert reply.startswith(b"HTTP/1.1 %d " % status)
    assert b"Connection: close" in reply
    assert message in reply


def test_http_1_0_closes_unless_kept_alive() -> None:
    with serve(tick=None) as server:
        with socket.create_connection(("127.0.0.1", server.port)) as raw:
            raw.settimeout(5)
            raw.sendall(b"GET /x HTTP/1.0\r\n\r\n")
            assert read_all(raw).startswith(b"HTTP/1.1 404 ")  # then closed by the server
        with socket.create_connection(("127.0.0.1", server.port)) as raw:
            raw.settimeout(5)
            raw.sendall(b"GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            first = raw.recv(65536)
            assert first.startswith(b"HTTP/1.1 404 ")
            raw.sendall(b"GET /y HTTP/1.0\r\n\r\n")
            assert read_all(raw).startswith(b"HTTP/1.1 404 ")
        assert server.connections_accepted == 2


def test_a_client_hanging_up_mid_body_leaves_the_server_working() -> None:
    with serve(tick=None) as server:
        with socket.create_connection(("127.0.0.1", server.port)) as raw:
            raw.sendall(b"POST /x HTTP/1.1\r\nHost: s\r\nContent-Length: 100\r\n\r\nshort")
        with httpx.Client(base_url=server.url, trust_env=False) as http:
            assert http.get("/x").status_code == 404


def test_listener_answers_501_to_other_methods() -> None:
    with callback_listener() as listener, httpx.Client(base_url=listener.url) as http:
        assert http.get("/").status_code == 501
        assert http.post("/cb", json={"ok": True}).status_code == 200
        assert listener.received == [{"ok": True}]
