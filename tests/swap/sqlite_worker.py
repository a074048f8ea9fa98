"""A worker process for the crash test in test_sqlite.py.

``python sqlite_worker.py DB NAME [--die-in-write N] [--die-after-write N]``

It loops receive → conditional update → ack on the SQLite backend at DB until the queue is
empty, printing a line per step (flushed) so the parent can SIGKILL it mid-run. A message
``{"change_id", "tag"}`` appends ``tag`` to the change's ``request_ids``, bumps ``retries``
and appends an audit entry, in one conditional write; a tag already there (the process died
between the write and the ack, so the message came back) is only acked.

``--die-in-write N`` SIGKILLs the process inside its Nth write transaction, after the change
row and the audit entry are written but before the commit; ``--die-after-write N`` right after
the Nth write commits, before the ack.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from typing import Any

import attrs

from thingspace_swap.backends.sqlite import SqliteBackend
from thingspace_swap.backends.sqlite import store as sqlite_store
from thingspace_swap.swap.audit import chain_entry
from thingspace_swap.swap.model import Change
from thingspace_swap.swap.ports import ConflictError, ReceivedMessage

VISIBILITY = 1.0  # seconds a killed worker's messages stay invisible


def apply(backend: SqliteBackend, message: ReceivedMessage, name: str) -> str:
    assert message.body is not None
    change_id, tag = str(message.body["change_id"]), str(message.body["tag"])
    while True:
        change = backend.store.get_change(change_id)
        assert change is not None, change_id
        if tag in change.request_ids:
            return "dup"
        entry = chain_entry(
            subject=f"change:{change_id}",
            batch_id=change.batch_id,
            head_seq=change.audit_seq,
            head_hash=change.audit_hash,
            at=time.time(),
            actor=name,
            action=f"apply {tag}",
            before=change.phase.value,
            after=change.phase.value,
            request_id=tag,
            detail=json.dumps({"version": change.version + 1}),
        )
        written: Change = attrs.evolve(
            change,
            retries=change.retries + 1,
            request_id=tag,
            request_ids=(*change.request_ids, tag),
            version=change.version + 1,
            audit_seq=entry.seq,
            audit_hash=entry.hash,
        )
        try:
            backend.store.update_change(written, change.version, entry)
        except ConflictError:
            continue  # another worker wrote it first: read again
        return "applied"


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def die_in_write(n: int) -> None:
    """Kill the process inside the Nth store write, just before its commit."""
    append = sqlite_store._append
    calls = [0]

    def append_then_die(conn: Any, entry: Any) -> None:
        append(conn, entry)
        calls[0] += 1
        if calls[0] == n:
            die()

    sqlite_store._append = append_then_die


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("name")
    parser.add_argument("--die-in-write", type=int, default=0)
    parser.add_argument("--die-after-write", type=int, default=0)
    args = parser.parse_args()
    if args.die_in_write:
        die_in_write(args.die_in_write)
    name, writes = args.name, 0
    with SqliteBackend(args.path, max_receives=100) as backend:
        print("ready", flush=True)
        while True:
            messages = backend.queue.receive(5, visibility_timeout=VISIBILITY)
            if not messages:
                stats = backend.queue.stats()
                if stats.visible + stats.in_flight + stats.delayed == 0:
                    break
                time.sleep(0.02)  # the rest is in flight elsewhere (or with a dead worker)
                continue
            for message in messages:
                outcome = apply(backend, message, name)
                writes += outcome == "applied"
                if args.die_after_write and writes == args.die_after_write:
                    die()
                tag = message.body["tag"] if message.body else "?"
                print(f"{outcome} {tag}", flush=True)
                backend.queue.ack(message)
                print(f"ack {tag}", flush=True)
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
