"""One process of the shared-login-guard tests: N clients (threads, or tasks of the async
client), each with its own token cache object on the same store, all calling the simulator at
the same moment. Prints what each client got, as JSON.

    python login_guard_worker.py URL CACHE N sync|async START_AT

CACHE is a SQLite file, or ``dynamodb:<endpoint>:<table>`` (a DynamoDB table at a local
endpoint, e.g. moto's server).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import thingspace_swap as ts

ACCOUNT = "0000123456-00001"


def outcome(error: BaseException | None) -> str:
    return "ok" if error is None else type(error).__name__


def credentials() -> ts.Credentials:
    return ts.Credentials.from_env(os.environ)


def token_cache(spec: str) -> ts.TokenCache:
    if not spec.startswith("dynamodb:"):
        return ts.SqliteTokenCache(spec)
    import boto3

    from thingspace_swap.aws import DynamoTokenCache

    endpoint, table = spec[len("dynamodb:") :].rsplit(":", 1)
    client = boto3.session.Session().client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    return DynamoTokenCache(client, table)


def run_threads(url: str, path: str, n: int, start_at: float) -> Counter[str]:
    clients = [
        ts.ThingSpaceClient(
            credentials(),
            account_name=ACCOUNT,
            base_url=url,
            token_cache=token_cache(path),
        )
        for _ in range(n)
    ]
    return threads_at_once(clients, start_at)


def threads_at_once(clients: Sequence[ts.ThingSpaceClient], start_at: float) -> Counter[str]:
    """Each client lists plans on a thread of its own, all at ``start_at`` (epoch seconds);
    what each got (``ok`` or the error's class name). Closes the clients."""
    results: Counter[str] = Counter()
    lock = threading.Lock()

    def call(client: ts.ThingSpaceClient) -> None:
        time.sleep(max(0.0, start_at - time.time()))
        try:
            client.plans.list()
            error = None
        except ts.ThingSpaceError as exc:
            error = exc
        with lock:
            results[outcome(error)] += 1

    threads = [threading.Thread(target=call, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    for client in clients:
        client.close()
    return results


async def run_tasks(url: str, path: str, n: int, start_at: float) -> Counter[str]:
    clients = [
        ts.AsyncThingSpaceClient(
            credentials(),
            account_name=ACCOUNT,
            base_url=url,
            token_cache=token_cache(path),
        )
        for _ in range(n)
    ]
    await asyncio.sleep(max(0.0, start_at - time.time()))
    answers: list[Any] = await asyncio.gather(
        *(c.plans.list() for c in clients), return_exceptions=True
    )
    for client in clients:
        await client.aclose()
    return Counter(outcome(a if isinstance(a, BaseException) else None) for a in answers)


def run_workers(
    url: str,
    cache: str,
    modes: Sequence[str],
    environ: Mapping[str, str],
    *,
    clients: int = 20,
) -> Counter[str]:
    """From a test: one process per mode, ``clients`` clients each, all calling at once;
    the outcomes of all of them. ``environ`` holds the ``THINGSPACE_*`` credentials."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("THINGSPACE_")}
    env.update(environ)
    start_at = time.time() + 4.0  # every process imported and built its clients by then
    workers = [
        subprocess.Popen(
            [sys.executable, __file__, url, cache, str(clients), mode, str(start_at)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for mode in modes
    ]
    total: Counter[str] = Counter()
    for worker in workers:
        out, err = worker.communicate(timeout=180)
        assert worker.returncode == 0, err
        total.update(json.loads(out))
    return total


def main() -> None:
    url, path, count, mode, start = sys.argv[1:6]
    if mode == "sync":
        results = run_threads(url, path, int(count), float(start))
    else:
        results = asyncio.run(run_tasks(url, path, int(count), float(start)))
    print(json.dumps(dict(results)))


if __name__ == "__main__":
    main()
