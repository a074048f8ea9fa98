"""The AWS adapters against moto's server on 127.0.0.1, over real HTTP.

Nothing here can reach AWS: every client is built with fake credentials and pointed at the local
server, and the environment names no config or credentials file, no profile and no metadata
service. The server starts once per session and is reset before every test.

Moto runs a DynamoDB transaction without isolation and undoes a cancelled one by restoring a
copy of the whole table, which loses writes made meanwhile by other requests; DynamoDB itself
serialises them. The server therefore runs DynamoDB requests one at a time (SQS and SNS
requests, long polls included, still run in parallel).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

from tests.aws.support import Aws, CallCounter
from thingspace_swap.aws import create_table

ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "AWS_EC2_METADATA_DISABLED": "true",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}


def _serialise_dynamodb(server: Any) -> None:
    """Run the server's DynamoDB requests one at a time (see the module notes)."""
    wsgi = server._server  # the werkzeug server ThreadedMotoServer started
    app = wsgi.app
    lock = threading.Lock()

    def serialised(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not str(environ.get("HTTP_X_AMZ_TARGET", "")).startswith("DynamoDB_"):
            return app(environ, start_response)  # type: ignore[no-any-return]
        with lock:
            return list(app(environ, start_response))

    wsgi.app = serialised


@pytest.fixture(scope="session")
def aws() -> Iterator[Aws]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in ENVIRONMENT.items():
            patch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL"):
            patch.delenv(name, raising=False)
        from moto.server import ThreadedMotoServer

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            _serialise_dynamodb(server)
            host, port = server.get_host_and_port()
            assert host == "127.0.0.1"
            yield Aws(f"http://127.0.0.1:{port}")
        finally:
            server.stop()


@pytest.fixture(autouse=True)
def _fresh(aws: Aws) -> None:
    """Every test starts on an empty server."""
    aws.reset()


@pytest.fixture
def table(aws: Aws) -> str:
    create_table(aws.dynamodb, "swap")
    return "swap"


@pytest.fixture
def calls() -> CallCounter:
    """Counts API calls of the clients passed to its ``watch``."""
    return CallCounter()
