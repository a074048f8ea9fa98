"""Credentials never go through a proxy in clear text: a plain-HTTP base URL with a proxy
(``HTTP_PROXY``, ``ALL_PROXY``, a client's ``proxy=``) is refused before anything is sent; an
``https`` base URL goes through a proxy only as a ``CONNECT`` tunnel.

The proxy here is a real one on 127.0.0.1 that records every byte it receives."""

from __future__ import annotations

import base64
import pickle
import socket
import socketserver
import threading
from collections.abc import Iterator

import httpx
import pytest

import thingspace_swap as ts
from thingspace_swap._clear_text import _environment_proxy
from thingspace_swap.testing import SimulatorServer, ThingSpaceSimulator, WallClock

SECRET = "canary-proxy-app-secret"
PASSWORD = "canary-proxy-password"
BASIC = base64.b64encode(f"app-key:{SECRET}".encode()).decode()
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


class RecordingProxy:
    """A plain-HTTP proxy on 127.0.0.1 that records what it receives and answers 502."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data = b""
                self.request.settimeout(5)
                try:
                    while b"\r\n\r\n" not in data:
                        chunk = self.request.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    head, _, body = data.partition(b"\r\n\r\n")
                    for line in head.split(b"\r\n"):
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":")[1])
                            while len(body) < length:
                                body += self.request.recv(65536)
                    proxy.received.append(head + b"\r\n\r\n" + body)
                    self.request.sendall(
                        b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n"
                        b"Connection: close\r\n\r\n"
                    )
                except OSError:
                    pass

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def everything(self) -> bytes:
        return b"".join(self.received)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingProxy]:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    served = RecordingProxy()
    yield served
    served.close()


@pytest.fixture
def credentials() -> ts.Credentials:
    return ts.Credentials("app-key", SECRET, "uws-user", PASSWORD)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def leaked(proxy: RecordingProxy) -> bool:
    data = proxy.everything
    return SECRET.encode() in data or BASIC.encode() in data or PASSWORD.encode() in data


def test_the_recording_proxy_sees_what_a_plain_http_client_sends(
    proxy: RecordingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: with HTTP_PROXY set, httpx sends a plain-HTTP request, Basic header
    included, to the proxy, which is what the client did before it refused to."""
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    with httpx.Client() as http:
        http.post(f"http://127.0.0.1:{free_port()}/token", auth=("app-key", SECRET))
    assert leaked(proxy)


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"])
def test_credentials_are_not_sent_through_a_plain_http_proxy(
    proxy: RecordingProxy,
    monkeypatch: pytest.MonkeyPatch,
    credentials: ts.Credentials,
    variable: str,
) -> None:
    monkeypatch.setenv(variable, proxy.url)
    base_url = f"http://127.0.0.1:{free_port()}"  # a local simulator, as the rule allows
    error: BaseException | None = None
    try:
        client = ts.ThingSpaceClient(
            credentials, account_name="0000123456-00001", base_url=base_url
        )
        client.plans.list()  # before the fix: the token request went to the proxy
    except ts.ThingSpaceError as caught:
        error = caught
    assert not leaked(proxy), proxy.everything[:300]
    assert proxy.received == []
    assert isinstance(error, ts.InsecureTransportError)
    assert isinstance(error, ts.ConfigurationError)
    assert error.proxy == proxy.url
    assert "NO_PROXY" in error.message
    assert "in clear text" in error.message


def test_the_async_client_refuses_too(
    proxy: RecordingProxy, monkeypatch: pytest.MonkeyPatch, credentials: ts.Credentials
) -> None:
    monkeypatch.setenv("ALL_PROXY", proxy.url)
    with pytest.raises(ts.InsecureTransportError):
        ts.AsyncThingSpaceClient(credentials, base_url=f"http://localhost:{free_port()}")
    assert proxy.received == []


def test_the_proxy_is_named_without_its_password(
    proxy: RecordingProxy, monkeypatch: pytest.MonkeyPatch, credentials: ts.Credentials
) -> None:
    port = proxy.url.rsplit(":", 1)[1]
    monkeypatch.setenv("HTTP_PROXY", f"http://proxy-user:proxy-pass-canary@127.0.0.1:{port}")
    with pytest.raises(ts.InsecureTransportError) as refused:
        ts.ThingSpaceClient(credentials, base_url=f"http://127.0.0.1:{free_port()}")
    assert refused.value.proxy == proxy.url
    assert "proxy-pass-canary" not in str(refused.value)
    assert "proxy-user" not in str(refused.value)


def test_a_client_given_a_proxy_explicitly_is_refused(
    proxy: RecordingProxy, credentials: ts.Credentials
) -> None:
    http = httpx.Client(proxy=proxy.url)
    with pytest.raises(ts.InsecureTransportError):
        ts.ThingSpaceClient(
            credentials, base_url=f"http://127.0.0.1:{free_port()}", http_client=http
        )
    http.close()
    assert proxy.received == []


def test_no_proxy_sends_directly_to_the_local_simulator(
    proxy: RecordingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = ThingSpaceSimulator(seed=1, clock=WallClock())
    sim.populate("0000123456-00001", 2, seed=1)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with SimulatorServer(sim) as server:
        creds = ts.Credentials.from_env(sim.credentials.as_env())
        with ts.ThingSpaceClient(creds, account_name="0000123456-00001", base_url=server.url) as c:
            assert c.plans.list()
    sim.close()
    assert proxy.received == []


def test_an_https_target_goes_through_the_proxy_only_as_a_tunnel(
    proxy: RecordingProxy, monkeypatch: pytest.MonkeyPatch, credentials: ts.Credentials
) -> None:
    """HTTPS through an HTTP proxy is a CONNECT tunnel: the proxy learns the host and port,
    TLS runs end to end inside it, so the credentials never reach the proxy."""
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    client = ts.ThingSpaceClient(
        credentials,
        account_name="0000123456-00001",
        base_url="https://thingspace.test",
        retry=ts.NO_RETRY,
    )
    with pytest.raises(ts.TransportError):  # this proxy refuses the tunnel (502)
        client.plans.list()
    client.close()
    assert proxy.received
    assert all(r.startswith(b"CONNECT thingspace.test:443 ") for r in proxy.received)
    assert not leaked(proxy)


def test_a_transport_of_the_caller_ignores_proxies(
    proxy: RecordingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """httpx does not route a client built on an explicit transport (the simulator's, a mock)
    through the environment's proxies, so nothing reaches a network: allowed."""
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    sim = ThingSpaceSimulator(seed=1)
    sim.populate("0000123456-00001", 2, seed=1)
    creds = ts.Credentials.from_env(sim.credentials.as_env())
    with ts.ThingSpaceClient(
        creds,
        account_name="0000123456-00001",
        base_url="http://sim.thingspace.test",
        transport=sim.transport(),
        clock=sim.clock,
    ) as client:
        assert client.plans.list()
    sim.close()
    assert proxy.received == []


def test_plain_http_beyond_loopback_is_refused_without_a_proxy(
    proxy: RecordingProxy, credentials: ts.Credentials
) -> None:
    with pytest.raises(ts.InsecureTransportError, match=r"plain http to thingspace\.example\.com"):
        ts.ThingSpaceClient(credentials, base_url="http://thingspace.example.com")
    with pytest.raises(ts.InsecureTransportError):
        ts.AsyncThingSpaceClient(credentials, base_url="http://10.0.0.8:8080")


def test_the_conservative_reading_of_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """What is used when httpx cannot be asked: a proxy unless NO_PROXY is * or the host."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    url = httpx.URL("http://127.0.0.1:8080/x")
    assert _environment_proxy(url) is None
    monkeypatch.setenv("ALL_PROXY", "http://u:p@proxy.example:3128")
    assert _environment_proxy(url) == "http://proxy.example:3128"
    monkeypatch.setenv("NO_PROXY", "localhost, 127.0.0.1")
    assert _environment_proxy(url) is None
    monkeypatch.setenv("NO_PROXY", "*")
    assert _environment_proxy(url) is None


def test_refusals_are_typed_and_picklable() -> None:
    error = ts.InsecureTransportError("no", proxy="http://p:1")
    copy = pickle.loads(pickle.dumps(error))
    assert isinstance(copy, ts.InsecureTransportError)
    assert copy.proxy == "http://p:1"
