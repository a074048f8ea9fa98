"""One process of the shared-login-guard tests: N clients (threads, or tasks of the async
client), each with its own SqliteTokenCache object on the same file, all calling the simulator at
the same moment. Prints what each client got, as JSON.

    python login_guard_worker.py URL CACHE_FILE N sync|async START_AT
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from collections import Counter
from typing import Any

import thingspace_swap as ts

ACCOUNT = "0000123456-00001"


def outcome(error: BaseException | None) -> str:
    return "ok" if error is None else type(error).__name__


def credentials() -> ts.Credentials:
    return ts.Credentials.from_env(os.environ)


def run_threads(url: str, path: str, n: int, start_at: float) -> Counter[str]:
    clients = [
        ts.ThingSpaceClient(
            credentials(),
            account_name=ACCOUNT,
            base_url=url,
            token_cache=ts.SqliteTokenCache(path),
        )
        for _ in range(n)
    ]
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
            token_cache=ts.SqliteTokenCache(path),
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


def main() -> None:
    url, path, count, mode, start = sys.argv[1:6]
    if mode == "sync":
        results = run_threads(url, path, int(count), float(start))
    else:
        results = asyncio.run(run_tasks(url, path, int(count), float(start)))
    print(json.dumps(dict(results)))


if __name__ == "__main__":
    main()
