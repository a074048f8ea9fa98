"""The AWS adapters against moto's server on 127.0.0.1, over real HTTP.

Nothing here can reach AWS: every client is built with fake credentials and pointed at the local
server, and the environment names no config or credentials file, no profile and no metadata
service. The server starts once per session and is reset before every test.

The server is adjusted to serialise DynamoDB requests and to run transactions as DynamoDB
does (see ``tests/aws/moto_server.py``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.aws.moto_server import moto_server
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


@pytest.fixture(scope="session")
def aws() -> Iterator[Aws]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in ENVIRONMENT.items():
            patch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL"):
            patch.delenv(name, raising=False)
        with moto_server() as endpoint:
            yield Aws(endpoint)


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
