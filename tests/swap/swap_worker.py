"""A swap worker process for the SIGKILL test: works the SQLite queue against a simulator on
loopback HTTP until told to stop (a file appears) or its time runs out.

    python tests/swap/swap_worker.py DB SIMULATOR_URL STOP_FILE
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import thingspace_swap as ts
from thingspace_swap.backends.sqlite import SqliteBackend
from thingspace_swap.swap import LifecycleSettings, SwapOrchestrator

ACCOUNT = "0000123456-00001"
SETTINGS = LifecycleSettings(
    lease=2.0, callback_timeout=4.0, settle_interval=1.0, settle_timeout=30.0, retry_initial=0.5
)


def main(db: str, url: str, stop: str) -> int:
    env = {
        "THINGSPACE_APP_KEY": "sim-app-key",
        "THINGSPACE_APP_SECRET": "sim-app-secret",
        "THINGSPACE_USERNAME": "sim-user",
        "THINGSPACE_PASSWORD": "sim-password",
    }
    client = ts.ThingSpaceClient(ts.Credentials.from_env(env), account_name=ACCOUNT, base_url=url)
    backend = SqliteBackend(db)
    orchestrator = SwapOrchestrator(
        client, queue=backend.queue, store=backend.store, settings=SETTINGS
    )
    deadline = time.monotonic() + 120
    done = 0
    while not Path(stop).exists() and time.monotonic() < deadline:
        report = orchestrator.work(max_messages=5)
        orchestrator.sweep()
        done += report.messages
        print(f"processed {done}", flush=True)
        if not report.messages:
            time.sleep(0.05)
    backend.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
