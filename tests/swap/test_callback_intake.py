"""The callback intake: its answers, its ASGI app, and callbacks end to end on the simulator."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import thingspace_swap as ts
from thingspace_swap._secret import Secret
from thingspace_swap.asgi import asgi_app
from thingspace_swap.models import CarrierServiceCallback
from thingspace_swap.swap import (
    MemoryMetrics,
    MemoryQueue,
    MemoryStore,
    Phase,
    SwapItem,
    SwapOrchestrator,
    SwapRequest,
)
from thingspace_swap.swap.callbacks import (
    CallbackIntake,
    CallbackResponse,
    register_listener,
)
from thingspace_swap.testing import ThingSpaceSimulator, VirtualClock

USER = "listener-user"
PASSWORD = "canary-Pa55w0rd-c4llb4ck-91e3"  # must never show in an answer or a log record
REQUEST = "076f7ea9-8230-49b1-9386-8dafaddc7d9e"
ACCOUNT = "0000123456-00001"
LISTENER = "https://listener.example.com:9001/thingspace/callbacks"
DROP = object()


def callback(**fields: Any) -> dict[str, Any]:
    """A valid success callback with our credentials; ``field=DROP`` removes a field."""
    body: dict[str, Any] = {
        "username": USER,
        "password": PASSWORD,
        "requestId": REQUEST,
        "deviceIds": [{"id": "89148000000800139702", "kind": "Iccid"}],
        "deviceResponse": {},
        "status": "Success",
        "callbackCount": 1,
        "maxCallbackThreshold": 4,
    }
    body.update(fields)
    return {k: v for k, v in body.items() if v is not DROP}


def encode(value: Any) -> bytes:
    return json.dumps(value).encode()


class Accept:
    """A stand-in for ``orchestrator.accept_callback``: records calls, answers or raises."""

    def __init__(self, result: str = "applied", error: Exception | None = None) -> None:
        self.result, self.error = result, error
        self.calls: list[CarrierServiceCallback] = []

    def __call__(self, cb: CarrierServiceCallback) -> str:
        self.calls.append(cb)
        if self.error is not None:
            raise self.error
        return self.result


def intake(
    accept: Callable[[CarrierServiceCallback], str] | None = None, **options: Any
) -> CallbackIntake:
    return CallbackIntake(accept or Accept(), username=USER, password=PASSWORD, **options)


def payload(response: CallbackResponse) -> dict[str, Any]:
    decoded = json.loads(response.body)
    assert isinstance(decoded, dict)
    return decoded


# Answers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("result", ["applied", "kept", "duplicate"])
def test_a_valid_callback_is_handed_on_and_answered_200(result: str) -> None:
    accept = Accept(result)
    response = intake(accept).handle(encode(callback()), {"content-type": "application/json"})
    assert response == CallbackResponse(200, encode({"result": result}).replace(b" ", b""))
    assert response.content_type == "application/json"
    [cb] = accept.calls
    assert (cb.request_id, cb.succeeded, cb.callback_count) == (REQUEST, True, 1)
    # The orchestrator never sees the credentials.
    assert cb.username == ""
    assert not cb.password


def test_a_failure_callback_is_handed_on() -> None:
    accept = Accept()
    fault = {
        "faultcode": "UnifiedWebService.REQUEST_FAILED.DeviceAlreadyActive",
        "faultstring": "x",
    }
    body = callback(status="Failed", faultResponse=fault, deviceResponse=DROP)
    assert intake(accept).handle(encode(body)).status == 200
    assert not accept.calls[0].succeeded
    assert accept.calls[0].fault_response is not None


MALFORMED = {
    "empty": b"",
    "not JSON": b"requestId=1",
    "truncated": encode(callback())[:-1],
    "not UTF-8": b"\xff\xfe\x00{",
    "array": b"[]",
    "string": b'"callback"',
    "null": b"null",
    "number": b"42",
    "too deeply nested": b"[" * 50_000 + b"]" * 50_000,
    "huge integer": b'{"requestId": ' + b"9" * 5000 + b"}",
    "no requestId": encode(callback(requestId=DROP)),
    "null requestId": encode(callback(requestId=None)),
    "numeric requestId": encode(callback(requestId=5)),
    "empty requestId": encode(callback(requestId="")),
    "blank requestId": encode(callback(requestId="   ")),
    "list requestId": encode(callback(requestId=[REQUEST])),
    "deviceIds not a list": encode(callback(deviceIds="89148000000800139702")),
    "deviceIds of strings": encode(callback(deviceIds=["89148000000800139702"])),
    "device id without kind": encode(callback(deviceIds=[{"id": "1"}])),
    "faultResponse a string": encode(callback(faultResponse="failed")),
    "callbackCount a word": encode(callback(callbackCount="once")),
    "callbackCount infinite": encode(callback(callbackCount=1e400)),
    "status an object": encode(callback(status={"a": 1})),
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_bodies_are_400(body: bytes) -> None:
    accept = Accept()
    response = intake(accept, max_bytes=200_000).handle(body)
    assert response.status == 400
    assert set(payload(response)) == {"error"}
    assert accept.calls == []


def test_a_400_names_the_field_but_not_its_value() -> None:
    response = intake().handle(encode(callback(callbackCount="sixty-six")))
    assert payload(response) == {"error": "malformed callback at $.callback_count"}


CREDENTIALS = {
    "wrong username": {"username": "listener-usEr"},
    "wrong password": {"password": PASSWORD[:-1] + "4"},
    "password prefix": {"password": PASSWORD[:-1]},
    "password longer": {"password": PASSWORD + "x"},
    "swapped": {"username": PASSWORD, "password": USER},
    "both wrong": {"username": "admin", "password": "admin"},
    "no username": {"username": DROP},
    "no password": {"password": DROP},
    "no credentials": {"username": DROP, "password": DROP},
    "empty strings (as when none were registered)": {"username": "", "password": ""},
    "null password": {"password": None},
    "numeric password": {"password": 12345},
    "password in a list": {"password": [PASSWORD]},
    "lone surrogate password": {"password": "\ud800"},
    "lone surrogate username": {"username": "\udfff"},
}


@pytest.mark.parametrize("fields", CREDENTIALS.values(), ids=CREDENTIALS.keys())
def test_wrong_or_missing_credentials_are_401(fields: dict[str, Any]) -> None:
    accept = Accept()
    response = intake(accept).handle(encode(callback(**fields)))
    assert (response.status, payload(response)) == (401, {"error": "wrong credentials"})
    assert accept.calls == []


def test_credentials_are_checked_before_the_callback_shape() -> None:
    """An unauthenticated sender learns nothing about what a valid callback looks like."""
    body = encode(callback(password="guess", requestId=DROP, deviceIds="x"))
    assert intake().handle(body).status == 401


def test_oversize_bodies_are_413_and_the_cap_is_inclusive() -> None:
    accept = Accept()
    small = intake(accept, max_bytes=1000)
    exact = encode(callback(pad=""))
    exact = encode(callback(pad="x" * (1000 - len(exact))))
    assert len(exact) == 1000
    assert small.handle(exact).status == 200
    response = small.handle(exact + b" ")
    assert (response.status, payload(response)) == (413, {"error": "body larger than 1000 bytes"})
    assert len(accept.calls) == 1


def test_the_default_cap_is_64_kb() -> None:
    assert intake().max_bytes == 64_000
    assert intake().handle(b" " * 64_001).status == 413


ALLOWED = ["203.0.113.7", "198.51.100.0/24", "2001:db8::1", "2001:db8:abcd::/48"]


@pytest.mark.parametrize(
    ("source", "status"),
    [
        ("203.0.113.7", 200),
        ("198.51.100.0", 200),
        ("198.51.100.255", 200),
        ("2001:db8::1", 200),
        ("2001:0db8:0000::0001", 200),
        ("2001:db8:abcd:12::5", 200),
        ("::ffff:198.51.100.9", 200),  # IPv4 through a dual-stack socket
        ("203.0.113.8", 403),
        ("198.51.101.1", 403),
        ("2001:db8::2", 403),
        ("2001:db8:abce::1", 403),
        ("::ffff:203.0.113.8", 403),
        ("127.0.0.1", 403),
        ("not-an-address", 403),
        ("", 403),
        (None, 403),
    ],
)
def test_the_allow_list_takes_addresses_and_networks_of_both_families(
    source: str | None, status: int
) -> None:
    accept = Accept()
    response = intake(accept, allowed_sources=ALLOWED).handle(encode(callback()), source_ip=source)
    assert response.status == status
    assert len(accept.calls) == (status == 200)
    if status == 403:
        assert payload(response) == {"error": "source not allowed"}


def test_the_allow_list_is_checked_first_and_does_not_replace_credentials() -> None:
    guarded = intake(allowed_sources=ALLOWED)
    assert guarded.handle(b"x" * 100_000, source_ip="192.0.2.1").status == 403
    assert guarded.handle(b"not json", source_ip="192.0.2.1").status == 403
    assert guarded.handle(encode(callback(password="no")), source_ip="203.0.113.7").status == 401


def test_no_allow_list_allows_any_source_and_an_empty_one_allows_none() -> None:
    assert intake().handle(encode(callback()), source_ip=None).status == 200
    assert intake().handle(encode(callback()), source_ip="192.0.2.1").status == 200
    assert (
        intake(allowed_sources=[]).handle(encode(callback()), source_ip="192.0.2.1").status == 403
    )


@pytest.mark.parametrize(
    "options",
    [
        {"username": "", "password": PASSWORD},
        {"username": USER, "password": ""},
        {"username": USER, "password": Secret("")},
        {"username": USER, "password": PASSWORD, "max_bytes": 0},
        {"username": USER, "password": PASSWORD, "allowed_sources": ["10.0.0.0/33"]},
        {"username": USER, "password": PASSWORD, "allowed_sources": ["listener.example.com"]},
    ],
)
def test_bad_configuration_is_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"required|positive|not an IP"):
        CallbackIntake(Accept(), **options)


def test_the_password_may_be_a_secret() -> None:
    guarded = CallbackIntake(Accept(), username=USER, password=Secret(PASSWORD))
    assert guarded.handle(encode(callback())).status == 200
    assert PASSWORD not in repr(guarded)


def test_a_failing_accept_is_503_so_thingspace_delivers_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    accept = Accept(error=ConnectionError("store unavailable"))
    with caplog.at_level(logging.ERROR, logger="thingspace_swap.swap.callbacks"):
        response = intake(accept).handle(encode(callback()))
    assert (response.status, payload(response)) == (503, {"error": "temporarily unavailable"})
    assert len(accept.calls) == 1
    [record] = caplog.records
    assert record.exc_info is not None
    assert REQUEST in record.getMessage()


def test_outcomes_are_counted() -> None:
    metrics = MemoryMetrics()
    results = iter(["applied", "duplicate"])
    guarded = intake(lambda cb: next(results), metrics=metrics, allowed_sources=["192.0.2.0/24"])
    ok, elsewhere = "192.0.2.1", "198.51.100.1"
    guarded.handle(encode(callback()), source_ip=ok)
    guarded.handle(encode(callback()), source_ip=ok)
    guarded.handle(b"{", source_ip=ok)
    guarded.handle(encode(callback(password="x")), source_ip=ok)
    guarded.handle(encode(callback()), source_ip=elsewhere)
    guarded.handle(b" " * 70_000, source_ip=ok)
    guarded.handle(encode(callback()), source_ip=ok)  # accept raises StopIteration: 503
    assert {tags: value for (name, tags), value in metrics.counters.items()} == {
        (("result", r),): 1.0
        for r in (
            "applied",
            "duplicate",
            "malformed",
            "unauthorized",
            "forbidden",
            "oversize",
            "unavailable",
        )
    }
    assert {name for name, _ in metrics.counters} == {"swap.callback.intake"}


def test_the_password_never_shows_in_answers_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    def leaky(cb: CarrierServiceCallback) -> str:
        raise RuntimeError(f"cannot store {cb!r} / {cb.password.reveal()!r}")

    guarded, failing = intake(max_bytes=2000), intake(leaky)
    answers = []
    with caplog.at_level(logging.DEBUG):
        answers += [
            guarded.handle(encode(callback())),
            guarded.handle(encode(callback(password=PASSWORD + "x"))),
            guarded.handle(encode(callback(username=PASSWORD))),
            guarded.handle(encode(callback(username=PASSWORD, password=PASSWORD))),
            guarded.handle(encode(callback(callbackCount=PASSWORD))),
            guarded.handle(encode(callback(requestId=[PASSWORD]))),
            guarded.handle(encode(callback(deviceIds=[{"id": PASSWORD}]))),
            guarded.handle(b'{"password": "' + PASSWORD.encode()),
            guarded.handle(encode(callback(pad=PASSWORD * 100))),
            failing.handle(encode(callback())),
        ]
    assert [a.status for a in answers] == [200, 401, 401, 401, 400, 400, 400, 400, 413, 503]
    assert not any(PASSWORD.encode() in a.body for a in answers)
    assert caplog.records  # something was logged...
    assert PASSWORD not in caplog.text  # ...but never the password (tracebacks included)
    assert all(PASSWORD not in r.getMessage() for r in caplog.records)


def compare_digest_calls(action: Callable[[], object]) -> int:
    """How often ``action`` calls ``hmac.compare_digest`` (counted by a profiler, not a patch)."""
    calls = 0

    def profile(frame: Any, event: str, arg: Any) -> None:
        nonlocal calls
        if event == "c_call" and arg is hmac.compare_digest:
            calls += 1

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        action()
    finally:
        sys.setprofile(previous)
    return calls


@pytest.mark.parametrize(
    "fields",
    [{}, *CREDENTIALS.values()],
    ids=["right", *CREDENTIALS.keys()],
)
def test_both_credentials_are_always_compared_in_constant_time(fields: dict[str, Any]) -> None:
    """Two ``hmac.compare_digest`` calls whatever is wrong: no early exit on the username."""
    guarded = intake()
    body = encode(callback(**fields))
    assert compare_digest_calls(lambda: guarded.handle(body)) == 2


# Anything at all -------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = {
    "requestId": st.text(max_size=40) | JSON,
    "deviceIds": st.lists(
        st.fixed_dictionaries({}, optional={"id": JSON, "kind": JSON}), max_size=3
    )
    | JSON,
    "status": st.sampled_from(["Success", "Failed"]) | JSON,
    "faultResponse": st.fixed_dictionaries({}, optional={"faultcode": JSON, "faultstring": JSON})
    | JSON,
    "deviceResponse": JSON,
    "callbackCount": JSON,
    "maxCallbackThreshold": JSON,
    "other": JSON,
}
NEAR_VALID = st.fixed_dictionaries(
    {"username": st.just(USER) | JSON, "password": st.just(PASSWORD) | JSON}, optional=FIELDS
)


def check(guarded: CallbackIntake, accept: Accept, body: bytes, allowed: set[int]) -> None:
    response = guarded.handle(body)
    assert response.status in allowed
    assert len(accept.calls) == (response.status == 200)
    assert set(payload(response)) == ({"result"} if response.status == 200 else {"error"})


@settings(max_examples=300, deadline=None)
@given(st.one_of(JSON, NEAR_VALID))
@example({"username": USER, "password": "\ud800", "requestId": "r"})
@example({"username": USER, "password": PASSWORD, "requestId": "\ud800"})
@example({"username": USER, "password": PASSWORD, "requestId": "r", "callbackCount": 1e400})
def test_any_json_value_gets_an_answer_never_an_exception(value: Any) -> None:
    accept = Accept()
    check(intake(accept, max_bytes=2000), accept, encode(value), {200, 400, 401, 413})


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
@example(b"\xef\xbb\xbf{}")
@example(b"\x00\x00\x00{")
def test_any_bytes_get_an_answer_never_an_exception(body: bytes) -> None:
    accept = Accept()
    check(intake(accept, max_bytes=200), accept, body, {400, 401, 413})


# ASGI ------------------------------------------------------------------------------------


def http_scope(
    method: str,
    path: str = "/thingspace/callbacks",
    *,
    client: tuple[str, int] | None = ("203.0.113.7", 49152),
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"listener.example.com"), *headers],
        "client": client,
        "server": ("10.0.0.5", 9001),
    }


def chunks(body: bytes, size: int = 100) -> list[dict[str, Any]]:
    parts = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
    return [
        {"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
        for i, part in enumerate(parts)
    ]


class Exchange:
    """One ASGI call: what the app read and what it sent."""

    def __init__(self, messages: Iterable[dict[str, Any]]) -> None:
        self._messages: Iterator[dict[str, Any]] = iter(messages)
        self.received = 0
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        self.received += 1
        return next(self._messages, {"type": "http.disconnect"})

    async def send(self, message: Any) -> None:
        self.sent.append(dict(message))

    @property
    def status(self) -> int:
        assert self.sent[0]["type"] == "http.response.start"
        return int(self.sent[0]["status"])

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.sent[0]["headers"])

    @property
    def body(self) -> bytes:
        assert [m["type"] for m in self.sent[1:]] == ["http.response.body"]
        return bytes(self.sent[1]["body"])


async def call(
    app: Any, scope: dict[str, Any], messages: Iterable[dict[str, Any]] = ()
) -> Exchange:
    exchange = Exchange(messages)
    await app(scope, exchange.receive, exchange.send)
    return exchange


async def test_asgi_post_of_a_valid_callback_is_200() -> None:
    accept = Accept("kept")
    app = asgi_app(intake(accept, allowed_sources=["203.0.113.0/24"]))
    done = await call(app, http_scope("POST"), chunks(encode(callback()), 37))
    assert (done.status, json.loads(done.body)) == (200, {"result": "kept"})
    assert done.headers[b"content-type"] == b"application/json"
    assert done.headers[b"content-length"] == str(len(done.body)).encode()
    assert [cb.request_id for cb in accept.calls] == [REQUEST]


async def test_asgi_refuses_a_huge_chunked_body_without_reading_it_all() -> None:
    accept = Accept()
    huge = ({"type": "http.request", "body": b"x" * 1000, "more_body": True} for _ in range(10_000))
    done = await call(asgi_app(intake(accept, max_bytes=4000)), http_scope("POST"), huge)
    assert done.status == 413
    assert done.received == 5  # 5000 bytes read: one chunk past the cap, not one more
    assert done.headers[b"connection"] == b"close"
    assert accept.calls == []


async def test_asgi_refuses_a_declared_oversize_body_without_reading_any() -> None:
    scope = http_scope("POST", headers=[(b"content-length", b"64001")])
    done = await call(asgi_app(intake()), scope, chunks(b"x" * 64_001))
    assert (done.status, done.received) == (413, 0)


@pytest.mark.parametrize(
    ("declared", "status"),
    [(b"9" * 5000, 413), (b"\xb2", 200), (b"-1", 200), (b"", 200), (b"12abc", 200)],
    ids=["huge", "superscript two", "negative", "empty", "junk"],
)
async def test_asgi_odd_content_lengths_neither_crash_nor_bypass_the_cap(
    declared: bytes, status: int
) -> None:
    scope = http_scope("POST", headers=[(b"content-length", declared)])
    done = await call(asgi_app(intake()), scope, chunks(encode(callback())))
    assert done.status == status
    huge = await call(asgi_app(intake(max_bytes=500)), scope, chunks(b" " * 1000))
    assert huge.status == 413


async def test_asgi_refuses_a_source_off_the_allow_list_without_reading() -> None:
    app = asgi_app(intake(allowed_sources=["198.51.100.0/24"]))
    done = await call(app, http_scope("POST"), chunks(encode(callback())))
    assert (done.status, done.received) == (403, 0)
    done = await call(app, http_scope("POST", client=None), chunks(encode(callback())))
    assert done.status == 403
    done = await call(
        app, http_scope("POST", client=("198.51.100.4", 1)), chunks(encode(callback()))
    )
    assert done.status == 200


async def test_asgi_client_gone_mid_body_gets_no_answer() -> None:
    accept = Accept()
    done = await call(asgi_app(intake(accept)), http_scope("POST"), chunks(encode(callback()))[:1])
    assert done.sent == []
    assert accept.calls == []


async def test_asgi_answers_401_and_400_from_the_intake() -> None:
    app = asgi_app(intake())
    assert (
        await call(app, http_scope("POST"), chunks(encode(callback(password="x"))))
    ).status == 401
    assert (await call(app, http_scope("POST"), chunks(b"{"))).status == 400


async def test_asgi_health_and_routing() -> None:
    app = asgi_app(intake(), path="/cb")
    health = await call(app, http_scope("GET", "/healthz"))
    assert (health.status, json.loads(health.body)) == (200, {"status": "ok"})
    head = await call(app, http_scope("HEAD", "/healthz"))
    assert (head.status, head.body) == (200, b"")
    wrong = await call(app, http_scope("POST", "/healthz"))
    assert (wrong.status, wrong.headers[b"allow"]) == (405, b"GET, HEAD")
    get = await call(app, http_scope("GET", "/cb"))
    assert (get.status, get.headers[b"allow"]) == (405, b"POST")
    assert (await call(app, http_scope("POST", "/thingspace/callbacks"))).status == 404
    assert (await call(app, http_scope("GET", "/"))).status == 404
    assert (await call(app, http_scope("POST", "/cb"), chunks(encode(callback())))).status == 200


async def test_asgi_lifespan_startup_and_shutdown() -> None:
    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    done = await call(
        asgi_app(intake()), {"type": "lifespan", "asgi": {"version": "3.0"}}, messages
    )
    assert done.sent == [
        {"type": "lifespan.startup.complete"},
        {"type": "lifespan.shutdown.complete"},
    ]


async def test_asgi_websockets_are_closed() -> None:
    scope = {"type": "websocket", "path": "/thingspace/callbacks"}
    done = await call(asgi_app(intake()), scope, [{"type": "websocket.connect"}])
    assert done.sent == [{"type": "websocket.close", "code": 1008}]


# End to end ------------------------------------------------------------------------------


class World:
    """Simulator, client, orchestrator and intake on one virtual clock; the simulator delivers
    every callback through the intake (or the ASGI app)."""

    def __init__(
        self,
        *,
        request_delay: float = 20.0,
        accept: Callable[[CarrierServiceCallback], str] | None = None,
    ) -> None:
        self.clock = VirtualClock()
        self.sim = ThingSpaceSimulator(seed=3, clock=self.clock, request_delay=request_delay)
        self.population = self.sim.populate(ACCOUNT, 30, seed=3)
        self.client = ts.ThingSpaceClient(
            ts.Credentials.from_env(self.sim.credentials.as_env()),
            account_name=ACCOUNT,
            base_url="https://simulator.thingspace.test",
            transport=self.sim.transport(),
            clock=self.clock,
        )
        self.store = MemoryStore()
        self.orchestrator = SwapOrchestrator(
            self.client, queue=MemoryQueue(clock=self.clock), store=self.store, clock=self.clock
        )
        self.metrics = MemoryMetrics()
        self.intake = CallbackIntake(
            accept or self.orchestrator.accept_callback,
            username=USER,
            password=PASSWORD,
            metrics=self.metrics,
        )
        register_listener(self.client, LISTENER, username=USER, password=PASSWORD)
        self.delivered: list[tuple[dict[str, Any], CallbackResponse]] = []
        self.sim.deliver = self.deliver

    def deliver(self, url: str, body: dict[str, Any]) -> int:
        assert url == LISTENER
        response = self.intake.handle(json.dumps(body).encode())
        self.delivered.append((body, response))
        return response.status

    def submit(self, count: int = 6, *, plan: bool = True) -> str:
        """Half SIM swaps, half device swaps, with a plan change (a second callback) unless
        ``plan`` is false or the device is on that plan already."""
        pop = self.population
        active = [d for d in pop.devices if d.state == "active" and d.mdn and d.iccid and d.imei]
        active = active[:count]
        half = count // 2
        items = [
            SwapItem.sim_swap(str(d.iccid), new)
            for d, new in zip(active[:half], pop.spare_iccids, strict=False)
        ]
        items += [
            SwapItem.device_swap(str(d.imei), new)
            for d, new in zip(active[half:], pop.spare_imeis, strict=False)
        ]
        target = pop.plans[1].code if plan else None
        request = SwapRequest(ACCOUNT, items, target_plan=target, actor="tester")
        submission = self.orchestrator.submit(request)
        assert submission.batch is not None
        return submission.batch.batch_id

    def intake_counts(self) -> dict[str, float]:
        return {dict(tags)["result"]: v for (_, tags), v in self.metrics.counters.items()}

    def assert_completed_by_callbacks(self, batch_id: str, count: int) -> int:
        """Every change completed, each step settled by its callback (never by reading the
        device after a missing callback). Returns how many callbacks were applied."""
        status = self.orchestrator.status(batch_id)
        assert status.counts == {"completed": count}
        applied = 0
        for change in status.changes:
            history = self.orchestrator.history(change.change_id)
            assert Phase.SETTLING.value not in {e.after for e in history}
            steps = 1 + any("changing plan" in e.action for e in history)
            assert sum(e.action.startswith("callback: ") for e in history) == steps
            applied += steps
        return applied


def test_swaps_complete_through_the_intake() -> None:
    world = World()
    [registration] = world.client.callbacks.list()
    assert (registration.url, registration.username) == (LISTENER, USER)
    assert registration.password == Secret(PASSWORD)
    batch_id = world.submit(6)
    world.orchestrator.run_until_complete(batch_id)
    applied = world.assert_completed_by_callbacks(batch_id, 6)
    assert applied > 6  # some changes needed a plan change too
    assert len(world.delivered) == applied
    assert all(r.status == 200 for _, r in world.delivered)
    assert world.intake_counts() == {"applied": applied}
    metrics = world.orchestrator.metrics
    assert isinstance(metrics, MemoryMetrics)
    assert metrics.total("swap.callback.received") == applied


def test_callbacks_before_the_request_id_is_stored_complete_too() -> None:
    world = World(request_delay=0)  # callbacks arrive before the submitting call returns
    batch_id = world.submit(4)
    world.orchestrator.run_until_complete(batch_id)
    world.assert_completed_by_callbacks(batch_id, 4)


def test_a_forged_callback_is_refused_and_changes_nothing() -> None:
    world = World()
    batch_id = world.submit(4)
    world.orchestrator.work(until_idle=True)
    waiting = list(world.store.changes(batch_id))
    assert {c.phase for c in waiting} == {Phase.AWAITING}
    target = waiting[0]
    assert target.request_id is not None
    forged = {
        "username": USER,
        "password": "password",
        "requestId": target.request_id,
        "deviceIds": [{"id": d.id, "kind": d.kind} for d in target.device_ids],
        "faultResponse": {
            "faultcode": "UnifiedWebService.REQUEST_FAILED.DeviceAlreadyActive",
            "faultstring": "forged",
        },
        "status": "Failed",
    }
    for body in (
        forged,
        {**forged, "password": ""},
        {k: forged[k] for k in forged if k != "password"},
    ):
        assert world.intake.handle(encode(body)).status == 401
    assert world.store.get_change(target.change_id) == target
    assert world.store.inbox(target.request_id) == []
    world.orchestrator.run_until_complete(batch_id)
    world.assert_completed_by_callbacks(batch_id, 4)


def test_duplicate_deliveries_are_harmless() -> None:
    world = World()
    real = world.deliver

    def twice(url: str, body: dict[str, Any]) -> int:
        real(url, body)
        return real(url, body)

    world.sim.deliver = twice
    batch_id = world.submit(4)
    world.orchestrator.run_until_complete(batch_id)
    applied = world.assert_completed_by_callbacks(batch_id, 4)
    assert world.intake_counts() == {"applied": applied, "duplicate": applied}

    # Redelivered long after the batch finished: still 200, still nothing changes.
    before = {c.change_id: c for c in world.store.changes(batch_id)}
    for body, _ in list(world.delivered):
        response = world.intake.handle(encode({**body, "callbackCount": 2}))
        assert (response.status, payload(response)) == (200, {"result": "duplicate"})
    assert {c.change_id: c for c in world.store.changes(batch_id)} == before
    assert max(world.sim.submission_counts().values()) == 1


def test_a_callback_of_an_unknown_request_is_kept() -> None:
    world = World()
    body = callback(
        requestId=str(uuid.uuid4()), deviceIds=[{"id": "89148000000000000000", "kind": "iccid"}]
    )
    assert payload(world.intake.handle(encode(body))) == {"result": "kept"}
    assert len(world.store.inbox(body["requestId"])) == 1


def test_callbacks_refused_with_503_are_delivered_again_and_nothing_is_lost() -> None:
    world = World()
    failed_once: set[str] = set()

    def flaky_store(cb: CarrierServiceCallback) -> str:
        if cb.request_id not in failed_once:
            failed_once.add(cb.request_id)
            raise ConnectionError("store unavailable")
        return world.orchestrator.accept_callback(cb)

    world.intake = CallbackIntake(
        flaky_store, username=USER, password=PASSWORD, metrics=world.metrics
    )
    batch_id = world.submit(4)
    world.orchestrator.run_until_complete(batch_id)
    applied = world.assert_completed_by_callbacks(batch_id, 4)
    attempts: dict[str, list[tuple[int, int]]] = {}
    for body, response in world.delivered:
        attempts.setdefault(body["requestId"], []).append((body["callbackCount"], response.status))
    assert list(attempts.values()) == [[(1, 503), (2, 200)]] * applied
    assert world.intake_counts() == {"unavailable": applied, "applied": applied}


def test_swaps_complete_through_the_asgi_app() -> None:
    world = World()
    app = asgi_app(world.intake)

    def over_asgi(url: str, body: dict[str, Any]) -> int:
        return asyncio.run(call(app, http_scope("POST"), chunks(encode(body), 256))).status

    world.sim.deliver = over_asgi
    batch_id = world.submit(4)
    world.orchestrator.run_until_complete(batch_id)
    applied = world.assert_completed_by_callbacks(batch_id, 4)
    assert world.intake_counts() == {"applied": applied}


async def test_register_listener_with_the_async_client() -> None:
    sim = ThingSpaceSimulator(seed=1)
    sim.add_account(ACCOUNT)
    async with ts.AsyncThingSpaceClient(
        ts.Credentials.from_env(sim.credentials.as_env()),
        account_name=ACCOUNT,
        base_url="https://simulator.thingspace.test",
        transport=sim.transport(),
        clock=sim.clock,
    ) as client:
        pending = register_listener(client, LISTENER, username=USER, password=Secret(PASSWORD))
        assert asyncio.iscoroutine(pending) or hasattr(pending, "__await__")
        registered = await pending
        assert registered.service_name == "CarrierService"
        [listed] = await client.callbacks.list()
    assert (listed.url, listed.username, listed.password) == (LISTENER, USER, Secret(PASSWORD))


def test_register_listener_requires_credentials() -> None:
    world = World()
    with pytest.raises(ValueError, match="required"):
        register_listener(world.client, LISTENER, username=USER, password="")


# Orchestrator behaviour seen through the intake -----------------------------------------


def test_a_callback_the_change_ignores_is_not_reported_applied() -> None:
    world = World()
    batch_id = world.submit(2)
    world.orchestrator.work(until_idle=True)
    change = next(iter(world.store.changes(batch_id)))
    other = callback(
        requestId=str(uuid.uuid4()),
        deviceIds=[{"id": d.id, "kind": d.kind} for d in change.device_ids],
    )
    response = world.intake.handle(encode(other))
    assert world.store.get_change(change.change_id) == change  # nothing was applied...
    assert payload(response) == {"result": "kept"}  # ...and none is reported


def test_a_failure_callback_of_another_request_does_not_settle_a_submitting_change() -> None:
    """Matched only by device (its requestId unknown), a failure cannot be tied to our
    request: the change waits for its own callback."""
    world = World(request_delay=0)
    foreign_sent: list[str] = []
    real = world.deliver

    def with_a_foreign_failure_first(url: str, body: dict[str, Any]) -> int:
        if not foreign_sent:  # ThingSpace reports another request on the same device
            foreign = {
                **body,
                "requestId": str(uuid.uuid4()),
                "status": "Failed",
                "faultResponse": {
                    "faultcode": "UnifiedWebService.REQUEST_FAILED.DeviceAlreadyActive",
                    "faultstring": "another request",
                },
            }
            foreign.pop("deviceResponse", None)
            foreign_sent.append(foreign["requestId"])
            real(url, foreign)
        return real(url, body)

    world.sim.deliver = with_a_foreign_failure_first
    batch_id = world.submit(1, plan=False)
    status = world.orchestrator.run_until_complete(batch_id)
    assert status.counts == {"completed": 1}
    assert [r.status for _, r in world.delivered] == [200, 200]
    assert world.store.inbox(foreign_sent[0])  # kept, though never applied
