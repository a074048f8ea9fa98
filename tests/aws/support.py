"""Helpers of the AWS tests: clients on the local moto server, and an API call counter."""

from __future__ import annotations

import threading
import urllib.request
from collections import Counter
from typing import Any

import boto3
from botocore.config import Config

REGION = "us-east-1"


class Aws:
    """boto3 clients on the moto server, and a way to make more."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.sqs = self.client("sqs")
        self.dynamodb = self.client("dynamodb")
        self.sns = self.client("sns")

    def client(self, service: str, **config: Any) -> Any:
        """A new client of ``service`` on the local server (its own event hooks)."""
        options: dict[str, Any] = {
            "retries": {"mode": "standard", "max_attempts": 2},
            "connect_timeout": 5,
            "read_timeout": 30,
            "max_pool_connections": 20,
        }
        options.update(config)
        return boto3.session.Session().client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            aws_session_token="testing",
            config=Config(**options),
        )

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200


class CallCounter:
    """Counts the API calls of the clients it watches, by ``service.Operation``."""

    def __init__(self) -> None:
        self.client: Any = None
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def watch(self, client: Any) -> CallCounter:
        """Count ``client``'s calls from now on (``self.client`` is the last one watched)."""
        client.meta.events.register("before-call", self._count)
        self.client = client
        return self

    def _count(self, model: Any, **_: Any) -> None:
        with self._lock:
            self.calls[f"{model.service_model.service_name}.{model.name}"] += 1

    def total(self, prefix: str = "") -> int:
        with self._lock:
            return sum(n for name, n in self.calls.items() if name.startswith(prefix))

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
