"""The simulator over real loopback HTTP: ``serve``, ``http_deliver``, ``callback_listener``,
``WallClock`` and ``python -m thingspace_swap.testing``."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timezone
from typing import Any

import httpx
import pytest
from sim_helpers import ACCOUNT, M2M, TOKEN_PATH, device_id_of, ids_of, make_iccid, make_imei

from thingspace_swap.testing import (
    Codes,
    SimulatorLimits,
    ThingSpaceSimulator,
    VirtualClock,
    WallClock,
    callback_listener,
    http_deliver,
    serve,
)
from thingspace_swap.testing.__main__ import main

NEW_ICCID = make_iccid(8001)


pytestmark = pytest.mark.usefixtures("no_leaked_threads")


def client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, trust_env=False, timeout=5.0)


def token(http: httpx.Client, sim: ThingSpaceSimulator) -> httpx.Response:
    creds = sim.credentials
    return http.post(
        TOKEN_PATH,
        auth=(creds.app_key, creds.app_secret),
        data={"grant_type": "client_credentials"},
    )


def login(http: httpx.Client, sim: ThingSpaceSimulator) -> None:
    """Token + session, kept as the client's default headers."""
    bearer = token(http, sim).json()["access_token"]
    http.headers["Authorization"] = f"Bearer {bearer}"
    creds = sim.credentials
    body = {"username": creds.username, "password": creds.password}
    response = http.post(f"{M2M}/session/login", json=body)
    assert response.status_code == 200, response.text
    http.headers["VZ-M2M-Token"] = response.json()["sessionToken"]


def wall_sim(deliver: Any, **options: Any) -> ThingSpaceSimulator:
    """A WallClock simulator with one active device and callbacks allowed on any port."""
    sim = ThingSpaceSimulator(
        seed=5,
        clock=WallClock(),
        deliver=deliver,
        limits=SimulatorLimits(callback_ports=None),
        **options,
    )
    sim.add_account(ACCOUNT)
    sim.add_device(ACCOUNT, iccid=make_iccid(1), imei=make_imei(1), mdn="5550000001")
    return sim


def swap_body(old: str, new: str) -> dict[str, Any]:
    return {
        "deviceIds": [{"id": old, "kind": "iccid"}],
        "deviceIdsTo": [{"id": new, "kind": "iccid"}],
        "change4gOption": "ChangeICCID",
    }


def register(http: httpx.Client, url: str) -> None:
    body = {"name": "CarrierService", "url": url, "username": "cb-user", "password": "cb-pw"}
    assert http.post(f"{M2M}/callbacks/{ACCOUNT}", json=body).status_code == 200


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# WallClock -----------------------------------------------------------------------------------


def test_wall_clock_follows_real_time() -> None:
    clock = WallClock()
    assert isinstance(clock, VirtualClock)  # accepted wherever a simulator clock is
    assert abs(clock.time() - time.time()) < 1
    assert abs(clock.monotonic() - time.monotonic()) < 1
    assert clock.now().tzinfo == timezone.utc
    assert abs(clock.now().timestamp() - time.time()) < 1
    start = time.monotonic()
    clock.sleep(0.02)
    clock.sleep(-5)
    asyncio.run(clock.sleep_async(0.02))
    assert 0.04 <= time.monotonic() - start < 1
    calls: list[int] = []
    unsubscribe = clock.subscribe(lambda: calls.append(1))
    unsubscribe()
    with pytest.raises(NotImplementedError):
        clock.advance(1)
    assert calls == []


def test_wall_clock_simulator_cannot_be_advanced() -> None:
    sim = ThingSpaceSimulator(clock=WallClock())
    with pytest.raises(NotImplementedError):
        sim.advance(1)
    sim.run_due()  # the ticker's call is fine


# Serving -------------------------------------------------------------------------------------


def test_token_login_and_keep_alive() -> None:
    with serve() as server, client(server.url) as http:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", server.url)
        assert server.url.endswith(f":{server.port}")
        assert isinstance(server.sim.clock, WallClock)
        response = token(http, server.sim)
        assert response.status_code == 200
        assert response.http_version == "HTTP/1.1"
        assert response.headers["content-type"] == "application/json"
        assert int(response.headers["content-length"]) == len(response.content)
        assert response.json()["token_type"] == "Bearer"
        bad = http.post(TOKEN_PATH, auth=("sim-app-key", "wrong"), data={"grant_type": "x"})
        assert bad.status_code == 401
        assert bad.json()["fault"]["code"] == "900901"
        login(http, server.sim)
        assert http.post(f"{M2M}/session/logout").status_code == 200
        assert http.get("/no/such/path").status_code == 404
        assert http.head("/no/such/path").content == b""
        assert server.requests_received == 7
        assert server.connections_accepted == 1  # one keep-alive connection for all of them


def test_list_devices_with_pagination() -> None:
    sim = ThingSpaceSimulator(seed=1)
    sim.populate(ACCOUNT, 25, seed=3)
    with serve(sim) as server, client(server.url) as http:
        login(http, sim)
        seen: list[dict[str, Any]] = []
        statuses: list[int] = []
        cursor = None
        while True:
            body: dict[str, Any] = {"accountName": ACCOUNT, "maxNumberOfDevices": 10}
            if cursor is not None:
                body["largestDeviceIdSeen"] = cursor
            response = http.post(f"{M2M}/devices/actions/list", json=body)
            statuses.append(response.status_code)
            page = response.json()
            seen.extend(page["devices"])
            if not page["hasMoreData"]:
                break
            cursor = max(device_id_of(d) for d in page["devices"])
        assert statuses == [202, 202, 200]
        assert [ids_of(d)["iccid"] for d in seen] == [d.iccid for d in sim.devices(ACCOUNT)]
        plans = http.get(f"{M2M}/plans/{ACCOUNT}")
        assert plans.status_code == 200
        assert {p["code"] for p in plans.json()} >= {"M2M5MBSHR", "IOT1GBSHR"}


def test_chunked_request_body() -> None:
    with serve() as server, client(server.url) as http:
        login(http, server.sim)

        def chunks() -> Iterator[bytes]:
            yield b'{"accountName": '
            yield b'"0000000404-00001"}'

        response = http.post(f"{M2M}/devices/actions/list", content=chunks())
        assert response.status_code == 400
        assert response.json()["errorCode"] == Codes.ACCOUNT_NOT_FOUND


def test_raw_expect_100_and_bad_content_length() -> None:
    with serve() as server, socket.create_connection(("127.0.0.1", server.port), 2) as raw:
        raw.settimeout(2)
        body = b"grant_type=client_credentials"
        raw.sendall(
            b"POST /api/ts/v1/oauth2/token HTTP/1.1\r\nHost: sim\r\n"
            b"Authorization: Basic c2ltLWFwcC1rZXk6c2ltLWFwcC1zZWNyZXQ=\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nExpect: 100-continue\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        assert raw.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n")  # before the body is sent
        raw.sendall(body)
        reply = raw.recv(4096)
        assert reply.startswith(b"HTTP/1.1 200 ")
        assert b"access_token" in reply
        raw.sendall(b"POST /x HTTP/1.1\r\nHost: sim\r\nContent-Length: nope\r\n\r\n")
        reply = b""
        while chunk := raw.recv(4096):  # the server closes the connection after answering
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 400 ")
        assert b"Connection: close" in reply
        assert b"invalid Content-Length" in reply


def test_change_identifier_callback_arrives_over_http() -> None:
    with callback_listener() as listener, http_deliver() as deliver:
        sim = wall_sim(deliver, request_delay=0.2)
        with serve(sim) as server, client(server.url) as http:
            login(http, sim)
            register(http, f"{listener.url}/thingspace")
            start = time.monotonic()
            response = http.put(
                f"{M2M}/devices/4G/actions/deviceId", json=swap_body(make_iccid(1), NEW_ICCID)
            )
            assert response.status_code == 200
            request_id = response.json()["requestId"]
            (body,) = listener.wait_for(1, timeout=3)
            assert time.monotonic() - start >= 0.19  # not before the request was due (0.2 s)
            assert body["requestId"] == request_id
            assert (body["status"], body["callbackCount"]) == ("Success", 1)
            assert (body["username"], body["password"]) == ("cb-user", "cb-pw")
            (call,) = listener.calls
            assert call.path == "/thingspace"
            assert call.status == 200
            assert call.headers["Content-Type"] == "application/json"
            found = http.post(
                f"{M2M}/devices/actions/list",
                json={"accountName": ACCOUNT, "deviceId": {"id": NEW_ICCID, "kind": "iccid"}},
            ).json()["devices"]
            assert [ids_of(d)["iccid"] for d in found] == [NEW_ICCID]
        sim.close()


def test_redelivery_when_the_listener_answers_500() -> None:
    with callback_listener() as listener, http_deliver() as deliver:
        listener.answer_next(500)
        sim = wall_sim(deliver, callback_retry_interval=0.1)
        with serve(sim, tick=0.02) as server, client(server.url) as http:
            login(http, sim)
            register(http, listener.url)
            http.put(f"{M2M}/devices/4G/actions/deviceId", json=swap_body(make_iccid(1), NEW_ICCID))
            bodies = listener.wait_for(2, timeout=3)
        assert [b["callbackCount"] for b in bodies] == [1, 2]
        assert [c.status for c in listener.calls] == [500, 200]
        assert bodies[0]["requestId"] == bodies[1]["requestId"]
        assert len(sim.outbox) == 2


def test_delivery_threads_send_slow_callbacks_side_by_side() -> None:
    # A listener that takes long (a Lambda that calls ThingSpace itself) holds one delivery
    # thread: the other callback goes out meanwhile, and requests are answered at once.
    in_flight = threading.Barrier(3, timeout=5)  # both deliveries and this test
    release = threading.Event()
    delivered: list[str] = []

    def slow(url: str, body: dict[str, Any]) -> int:
        in_flight.wait()
        assert release.wait(5)
        delivered.append(body["requestId"])
        return 200

    sim = wall_sim(slow, request_delay=0.1)
    sim.add_device(ACCOUNT, iccid=make_iccid(2), imei=make_imei(2), mdn="5550000002")
    sim.delivery_threads = 2
    with serve(sim, tick=0.02) as server, client(server.url) as http:
        login(http, sim)
        register(http, "http://127.0.0.1:9/callbacks")
        for old, new in ((make_iccid(1), NEW_ICCID), (make_iccid(2), make_iccid(3))):
            swap = http.put(f"{M2M}/devices/4G/actions/deviceId", json=swap_body(old, new))
            assert swap.status_code == 200
        in_flight.wait()  # two deliveries at once
        started = time.monotonic()
        listed = http.post(f"{M2M}/devices/actions/list", json={"accountName": ACCOUNT})
        assert listed.status_code == 200
        assert time.monotonic() - started < 1.0  # not behind the deliveries
        release.set()
        deadline = time.monotonic() + 5
        while len(delivered) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    sim.close()
    assert len(delivered) == 2
    assert sim.delivery_threads == 0


def test_delivery_threads_must_not_be_negative() -> None:
    sim = wall_sim(None)
    with pytest.raises(ValueError, match="threads must not be negative"):
        sim.delivery_threads = -1


def test_unreachable_listener_counts_failed_attempts() -> None:
    with http_deliver(timeout=1.0) as deliver:
        sim = wall_sim(deliver, callback_retry_interval=0)
        with serve(sim) as server, client(server.url) as http:
            login(http, sim)
            register(http, f"http://127.0.0.1:{free_port()}/cb")
            response = http.put(
                f"{M2M}/devices/4G/actions/deviceId", json=swap_body(make_iccid(1), NEW_ICCID)
            )
            assert response.status_code == 200
    assert len(sim.delivery_errors) == 4
    assert all(isinstance(e, httpx.ConnectError) for e in sim.delivery_errors)


def test_listener_rejects_non_json_and_times_out() -> None:
    with callback_listener() as listener, client(listener.url) as http:
        assert http.post("/", content=b"not json").status_code == 400
        assert http.post("/", json=[1, 2]).status_code == 400
        assert http.post("/x", json={"a": 1}).status_code == 200
        assert listener.received == [{"a": 1}]
        with pytest.raises(TimeoutError, match="1 of 2"):
            listener.wait_for(2, timeout=0.05)
        listener.clear()
        assert listener.received == []


async def test_async_client() -> None:
    sim = ThingSpaceSimulator(seed=1)
    sim.populate(ACCOUNT, 5, seed=3)
    creds = sim.credentials
    with serve(sim) as server:
        async with httpx.AsyncClient(base_url=server.url, trust_env=False) as http:
            issued = await http.post(
                TOKEN_PATH,
                auth=(creds.app_key, creds.app_secret),
                data={"grant_type": "client_credentials"},
            )
            http.headers["Authorization"] = f"Bearer {issued.json()['access_token']}"
            body = {"username": creds.username, "password": creds.password}
            session = (await http.post(f"{M2M}/session/login", json=body)).json()
            http.headers["VZ-M2M-Token"] = session["sessionToken"]
            pages = await asyncio.gather(
                *(
                    http.post(f"{M2M}/devices/actions/list", json={"accountName": ACCOUNT})
                    for _ in range(5)
                )
            )
            assert [len(p.json()["devices"]) for p in pages] == [5] * 5


def test_concurrent_clients() -> None:
    sim = ThingSpaceSimulator(seed=1)
    pop = sim.populate(ACCOUNT, 20, seed=3)
    with serve(sim) as server, client(server.url) as http:
        login(http, sim)  # one client shared by all threads: its pool opens many connections

        def work(n: int) -> list[int]:
            iccid = pop.devices[n].iccid
            lookup = {"accountName": ACCOUNT, "deviceId": {"id": iccid, "kind": "iccid"}}
            statuses = []
            for i in range(20):
                if i % 2:
                    response = http.get(f"{M2M}/plans/{ACCOUNT}")
                else:
                    response = http.post(f"{M2M}/devices/actions/list", json=lookup)
                    assert ids_of(response.json()["devices"][0])["iccid"] == iccid
                statuses.append(response.status_code)
            return statuses

        with ThreadPoolExecutor(20) as pool:
            results = list(pool.map(work, range(20)))
        assert results == [[200] * 20] * 20
        assert server.requests_received == 2 + 400
        assert server.connections_accepted > 1


def test_handler_exception_answers_500_and_the_server_survives(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with serve() as server, client(server.url) as http:
        sim = server.sim
        handle = sim.handle

        def broken(request: httpx.Request) -> httpx.Response:
            if request.url.path == "/boom":
                raise RuntimeError("kaput")
            return handle(request)

        sim.handle = broken  # type: ignore[method-assign]
        response = http.post("/boom", json={})
        assert response.status_code == 500
        assert response.json() == {
            "errorCode": Codes.UNEXPECTED,
            "errorMessage": "Simulator error: RuntimeError: kaput",
        }
        assert "simulator failed on POST /boom" in caplog.text
        assert token(http, sim).status_code == 200
        assert server.connections_accepted == 1  # the connection stayed usable


def test_transport_error_hangs_up_without_a_response() -> None:
    with serve() as server, client(server.url) as http:
        sim = server.sim
        handle = sim.handle

        def lossy(request: httpx.Request) -> httpx.Response:
            response = handle(request)  # processed...
            if request.url.path == TOKEN_PATH:
                raise httpx.ReadTimeout("response lost", request=request)  # ...but lost
            return response

        sim.handle = lossy  # type: ignore[method-assign]
        with pytest.raises(httpx.RemoteProtocolError):
            token(http, sim)
        assert sim.stats.token_requests == 1
        sim.handle = handle  # type: ignore[method-assign]
        assert token(http, sim).status_code == 200
        assert server.connections_accepted == 2


def test_close_hangs_up_idle_keep_alive_connections() -> None:
    baseline = threading.active_count()
    sim = ThingSpaceSimulator(seed=1, request_delay=30)  # a VirtualClock: the ticker is harmless
    server = serve(sim, tick=0.01)
    with server as running, client(running.url) as http, callback_listener() as listener:
        assert token(http, sim).status_code == 200  # leaves an idle keep-alive connection
        with client(listener.url) as other:
            assert other.post("/", json={}).status_code == 200
            assert threading.active_count() >= baseline + 3  # 2 server loops, the ticker
            started = time.monotonic()
            listener.close()
            listener.close()  # idempotent
        running.close()
        running.close()
        assert time.monotonic() - started < 1
        assert threading.active_count() == baseline
        with pytest.raises(httpx.TransportError):
            token(http, sim)
    sim.advance(1)  # still a working in-process simulator


def test_port_in_use_raises() -> None:
    with serve() as server, pytest.raises(OSError, match=r"(?i)in use"), serve(port=server.port):
        pass


# python -m thingspace_swap.testing -----------------------------------------------------------


def test_cli_serves_until_sigterm() -> None:
    command = [sys.executable, "-m", "thingspace_swap.testing", "--port", "0", "--devices", "5"]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1
    )
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in proc.stdout or ():
            lines.put(line)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        output = ""
        deadline = time.monotonic() + 10
        while "export THINGSPACE_PASSWORD" not in output:
            output += lines.get(timeout=max(0.01, deadline - time.monotonic()))
        found = re.search(r"listening on (http://127\.0\.0\.1:(\d+))", output)
        assert found is not None, output
        assert int(found.group(2)) != 0
        assert "account 0000123456-00001: 5 devices" in output
        assert "export THINGSPACE_APP_KEY=sim-app-key" in output
        with client(found.group(1)) as http:
            response = http.post(
                TOKEN_PATH,
                auth=("sim-app-key", "sim-app-secret"),
                data={"grant_type": "client_credentials"},
            )
            assert response.status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(5)
        with contextlib.suppress(Exception):
            proc.stderr.close()  # type: ignore[union-attr]
        with contextlib.suppress(Exception):
            proc.stdout.close()  # type: ignore[union-attr]


def test_cli_refuses_remote_hosts_and_bad_values(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--host", "0.0.0.0"]) == 2
    assert "non-loopback host '0.0.0.0' without --allow-remote" in capsys.readouterr().err
    assert main(["--devices", "-1"]) == 2
    assert "--devices must not be negative" in capsys.readouterr().err


def test_cli_help_has_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "python -m thingspace_swap.testing --port 8080" in out
    assert "--any-callback-port" in out
