"""DynamoStore beyond the contract: the table, conditions, audit append-only, line claims,
pagination of big batches, what a failed or crashed creation leaves, throttling, numbers."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import attrs
import pytest
from botocore.stub import Stubber

from tests.aws.support import Aws, CallCounter
from thingspace_swap.aws import DynamoStore, create_table, table_definition
from thingspace_swap.backends.aws.dynamodb.items import from_dynamo, to_dynamo
from thingspace_swap.models import DeviceId
from thingspace_swap.swap.audit import verify_chains
from thingspace_swap.swap.contract import T0, new_batch, next_change
from thingspace_swap.swap.model import Phase
from thingspace_swap.swap.ports import ConflictError, InboxEntry
from thingspace_swap.testing import VirtualClock


def lines(count: int, start: int = 0) -> list[str]:
    return [f"555{n:07d}" for n in range(start, start + count)]


def test_table_definition_creates_the_table(aws: Aws) -> None:
    arn = create_table(aws.dynamodb, "defined")
    assert arn.endswith(":table/defined")
    table = aws.dynamodb.describe_table(TableName="defined")["Table"]
    assert {
        i["IndexName"]: i["Projection"]["ProjectionType"] for i in table["GlobalSecondaryIndexes"]
    } == {
        "batches": "KEYS_ONLY",
        "due": "KEYS_ONLY",
    }
    assert [k["AttributeName"] for k in table["KeySchema"]] == ["pk", "sk"]


def test_table_definition_is_a_valid_cloudformation_resource() -> None:
    cfnlint = pytest.importorskip("cfnlint.api")
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {
            "SwapTable": {
                "Type": "AWS::DynamoDB::Table",
                "DeletionPolicy": "Retain",
                "UpdateReplacePolicy": "Retain",
                "Properties": table_definition(),
            }
        },
    }
    problems = [
        str(match) for match in cfnlint.lint_all(json.dumps(template)) if match.rule.id[0] in "EW"
    ]
    assert problems == []


def test_version_conditions_name_what_changed(aws: Aws, table: str) -> None:
    store = DynamoStore(aws.dynamodb, table)
    batch, (change,), _ = new_batch("b1", lines(1))
    store.create_batch(*new_batch("b1", lines(1)))
    other = DynamoStore(aws.dynamodb, table)  # a second worker with its own cache
    winner, entry = next_change(change, phase=Phase.CHECKING)
    other.update_change(winner, change.version, entry)
    loser, late = next_change(change, phase=Phase.CANCELLED)
    with pytest.raises(ConflictError, match=f"change {change.change_id} changed"):
        store.update_change(loser, change.version, late)  # its cache says version 1
    assert store.get_change(change.change_id) == winner
    with pytest.raises(ConflictError, match="batch b1 changed"):
        store.update_batch(attrs.evolve(batch, version=9), 7, None)


def test_audit_entries_are_append_only(aws: Aws, table: str) -> None:
    """An entry already written under a seq (say by a writer that crashed before its record
    write) makes the next write of that seq fail, record included."""
    store = DynamoStore(aws.dynamodb, table)
    _, (change,), audit = new_batch("b1", lines(1))
    store.create_batch(*new_batch("b1", lines(1)))
    updated, entry = next_change(change, phase=Phase.CHECKING)
    aws.dynamodb.put_item(
        TableName=table,
        Item={"pk": {"S": f"AUDIT#{entry.subject}"}, "sk": {"S": f"SEQ#{entry.seq:010d}"}},
    )
    with pytest.raises(ConflictError, match="audit entry 2 exists"):
        store.update_change(updated, change.version, entry)
    assert store.get_change(change.change_id) == change
    aws.dynamodb.delete_item(
        TableName=table,
        Key={"pk": {"S": f"AUDIT#{entry.subject}"}, "sk": {"S": f"SEQ#{entry.seq:010d}"}},
    )
    store.update_change(updated, change.version, entry)
    assert store.audit(entry.subject) == [audit[1], entry]


def test_line_claims_name_the_holder(aws: Aws, table: str) -> None:
    store = DynamoStore(aws.dynamodb, table)
    line = lines(1)[0]
    _, (held,), _ = new_batch("b1", [line])
    store.create_batch(*new_batch("b1", [line]))
    with pytest.raises(ConflictError, match=f"line {line} is held by change {held.change_id}"):
        store.create_batch(*new_batch("b2", [*lines(2, start=1), line]))
    assert store.get_batch("b2") is None
    assert [store.line_owner(x) for x in lines(3)] == [held.change_id, None, None]
    assert store.change_for_device(DeviceId(line, "mdn")) == held


def test_inbox_entries_are_kept_once(aws: Aws, table: str) -> None:
    store = DynamoStore(aws.dynamodb, table)
    entry = InboxEntry("req-1", "iccid:1", {"status": "Success", "n": 1.5, "k": 10}, T0 + 0.25)
    assert store.put_inbox(entry)
    assert not store.put_inbox(attrs.evolve(entry, body={"status": "Failed"}))
    (kept,) = store.inbox("req-1")
    assert kept == entry
    assert isinstance(kept.body["n"], float)
    assert isinstance(kept.body["k"], int)


# Moto copies the whole table once per item of a transaction, so a batch written in steps
# costs it time quadratic in the batch: these batches are small, and the store is told to use
# small transactions to take the same steps (DynamoDB's limit is 100 items).


def test_a_big_batch_is_written_in_steps_and_read_in_pages(
    aws: Aws, table: str, calls: CallCounter
) -> None:
    client = calls.watch(aws.client("dynamodb")).client
    store = DynamoStore(client, table, transaction_items=30, page_size=6)
    batch, changes, audit = new_batch("big", lines(20))
    store.create_batch(batch, changes, audit)
    # 20 claims, then 5 items a change (record, member, 2 device items, entry), batch last
    assert calls.calls["dynamodb.TransactWriteItems"] == 1 + 4
    calls.reset()
    assert list(store.changes("big")) == changes
    assert calls.calls["dynamodb.Query"] == 4  # 6 members a page
    assert calls.calls["dynamodb.BatchGetItem"] == 4
    assert store.get_batch("big") == batch
    assert store.line_owner(lines(20)[-1]) == changes[-1].change_id
    assert [b.batch_id for b in store.batches()] == ["big"]
    assert store.audit(f"change:{changes[15].change_id}") == [audit[16]]


def test_a_batch_audit_and_its_phases_are_read_in_pages(
    aws: Aws, table: str, calls: CallCounter
) -> None:
    client = calls.watch(aws.client("dynamodb")).client
    store = DynamoStore(client, table, transaction_items=30, page_size=6)
    batch, changes, audit = new_batch("big", lines(20))
    store.create_batch(batch, changes, audit)
    done, entry = next_change(changes[7], phase=Phase.COMPLETED)
    calls.reset()
    store.update_change(done, changes[7].version, entry)  # its member moves in the same write
    assert calls.calls == {"dynamodb.TransactWriteItems": 1}
    calls.reset()
    chains = list(store.audit_chains("big"))
    assert [c.subject for c in chains[1:]] == [f"change:{c.change_id}" for c in changes]
    assert verify_chains(chains, changes=20).ok
    # the batch (GetItem, Query), 4 pages of members and records, a Query per change's chain
    assert calls.calls == {
        "dynamodb.GetItem": 1,
        "dynamodb.Query": 1 + 4 + 20,
        "dynamodb.BatchGetItem": 4,
    }
    calls.reset()
    assert store.phase_counts("big") == {"pending": 19, "completed": 1}
    assert store.changes_in("big", [Phase.COMPLETED], 5) == [done]
    assert store.changes_in("big", [Phase.PENDING], 2) == changes[:2]
    assert calls.calls == {"dynamodb.Query": 3, "dynamodb.BatchGetItem": 2}


def test_members_written_before_they_carried_the_phase_are_read_through_their_records(
    aws: Aws, table: str
) -> None:
    store = DynamoStore(aws.dynamodb, table)
    _, changes, _ = made = new_batch("old", lines(4), terminal=lines(1))
    store.create_batch(*made)
    done, entry = next_change(changes[2], phase=Phase.COMPLETED)
    store.update_change(done, changes[2].version, entry)
    for change in changes:  # as a table written by an earlier version has them
        aws.dynamodb.update_item(
            TableName=table,
            Key={
                "pk": {"S": "BATCH#old"},
                "sk": {"S": f"CHANGE#{change.index:010d}#{change.change_id}"},
            },
            UpdateExpression="REMOVE phase",
        )
    assert store.phase_counts("old") == {"rejected": 1, "pending": 2, "completed": 1}
    assert store.changes_in("old", [Phase.PENDING, Phase.COMPLETED], 5) == [
        changes[1],
        done,
        changes[3],
    ]
    assert store.changes_in("old", [Phase.FAILED], 5) == []


def test_queries_follow_pages_past_one_megabyte(aws: Aws, table: str, calls: CallCounter) -> None:
    store = DynamoStore(calls.watch(aws.client("dynamodb")).client, table)
    body = {"deviceResponse": "x" * 8_000}
    for n in range(130):  # over 1 MB under one request id
        assert store.put_inbox(InboxEntry("req-1", f"iccid:{n:04d}", body, T0 + n))
    calls.reset()
    kept = store.inbox("req-1")
    assert [e.device_key for e in kept] == [f"iccid:{n:04d}" for n in range(130)]
    assert calls.calls["dynamodb.Query"] == 2


def test_a_big_batch_that_conflicts_on_a_line_leaves_nothing(aws: Aws, table: str) -> None:
    store = DynamoStore(aws.dynamodb, table, transaction_items=8)
    taken = lines(1, start=18)[0]
    _, (holder,), _ = new_batch("small", [taken])
    store.create_batch(*new_batch("small", [taken]))
    with pytest.raises(ConflictError, match=f"line {taken} is held by change {holder.change_id}"):
        store.create_batch(*new_batch("big", lines(20)))  # claims 16 lines, then fails
    assert_nothing_of(aws, store, table, "big", [x for x in lines(20) if x != taken])
    assert store.line_owner(taken) == holder.change_id


def test_a_big_batch_that_conflicts_on_a_change_leaves_nothing(aws: Aws, table: str) -> None:
    store = DynamoStore(aws.dynamodb, table, transaction_items=8)
    batch, (change,), audit = new_batch("small", lines(1, start=50))
    clash = attrs.evolve(change, change_id="big-c12")  # a change id already taken
    store.create_batch(batch, [clash], [audit[0], attrs.evolve(audit[1], subject="change:big-c12")])
    with pytest.raises(ConflictError, match="change big-c12 exists"):
        store.create_batch(*new_batch("big", lines(20)))  # claims, then changes, then fails
    assert store.get_change("big-c12") == clash
    assert_nothing_of(aws, store, table, "big", lines(20))


def assert_nothing_of(
    aws: Aws, store: DynamoStore, table: str, batch_id: str, on: list[str]
) -> None:
    assert store.get_batch(batch_id) is None
    assert list(store.changes(batch_id)) == []
    assert [store.line_owner(line) for line in on] == [None] * len(on)
    assert store.get_change(f"{batch_id}-c0") is None
    assert store.audit(f"change:{batch_id}-c0") == []
    assert store.change_for_device(DeviceId(f"8914800000{on[0]}", "iccid")) is None
    # only the first batch's items: record, member, change, claim, 2 device items, 2 entries
    assert aws.dynamodb.scan(TableName=table, Select="COUNT")["Count"] == 8


def test_a_crashed_creation_is_invisible_and_frees_its_lines(aws: Aws, table: str) -> None:
    clock = VirtualClock(start=T0)
    client = aws.client("dynamodb")
    writes = {"n": 0}

    def crash(**_: Any) -> None:
        writes["n"] += 1
        if writes["n"] > 4:  # claims and a few changes are written, then the process dies
            raise ConnectionError("the worker died")

    client.meta.events.register("before-call.dynamodb.TransactWriteItems", crash)
    client.meta.events.register("before-call.dynamodb.DeleteItem", crash)
    store = DynamoStore(client, table, clock=clock, transaction_items=10)
    batch, changes, audit = new_batch("crashed", lines(20))
    due = [attrs.evolve(c, deadline=T0 + 10) for c in changes]
    with pytest.raises(ConnectionError):
        store.create_batch(batch, due, audit)
    fresh = DynamoStore(aws.dynamodb, table, clock=clock)
    assert fresh.get_batch("crashed") is None
    assert list(fresh.batches(open_only=False)) == []
    first = lines(1)[0]
    assert fresh.line_owner(first) == "crashed-c0"  # a creation may still be under way
    clock.advance(fresh.orphan_grace + 1)
    assert fresh.line_owner(first) is None
    assert fresh.get_change("crashed-c0") is not None  # written, but part of no batch:
    assert fresh.due_changes(clock.time()) == []  # the sweep leaves it alone
    batch2, changes2, audit2 = new_batch("next", [first])
    fresh.create_batch(batch2, changes2, audit2)  # takes the orphaned claim over
    assert fresh.line_owner(first) == changes2[0].change_id
    assert fresh.change_for_device(changes2[0].device_ids[0]) == changes2[0]
    with pytest.raises(ValueError, match="transaction_items"):
        DynamoStore(client, table, transaction_items=101)


def test_throttled_calls_are_retried_with_backoff(aws: Aws, table: str) -> None:
    client = aws.client("dynamodb")
    clock = VirtualClock(start=T0)
    store = DynamoStore(client, table, clock=clock)
    record = DynamoStore(aws.dynamodb, table)
    _, (change,), _ = new_batch("b1", lines(1))
    record.create_batch(*new_batch("b1", lines(1)))
    item = aws.dynamodb.get_item(
        TableName=table, Key={"pk": {"S": f"CHANGE#{change.change_id}"}, "sk": {"S": "META"}}
    )["Item"]
    with Stubber(client) as stub:
        for code in ("ProvisionedThroughputExceededException", "ThrottlingException"):
            stub.add_client_error("get_item", code, http_status_code=400)
        stub.add_response("get_item", {"Item": item})
        started = clock.time()
        assert store.get_change(change.change_id) == change
        stub.assert_no_pending_responses()
    assert clock.time() > started  # it backed off twice


def test_a_conflicting_transaction_is_retried(aws: Aws, table: str) -> None:
    client = aws.client("dynamodb")
    clock = VirtualClock(start=T0)
    store = DynamoStore(client, table, clock=clock)
    _, (change,), _ = new_batch("b1", lines(1))
    store.create_batch(*new_batch("b1", lines(1)))  # the store knows the change it wrote
    updated, entry = next_change(change, phase=Phase.CHECKING)
    with Stubber(client) as stub:
        stub.add_client_error(
            "transact_write_items",
            "TransactionCanceledException",
            "Transaction cancelled",
            response_meta={},
            modeled_fields={
                "CancellationReasons": [{"Code": "TransactionConflict"}, {"Code": "None"}]
            },
        )
        stub.add_client_error(
            "transact_write_items",
            "TransactionCanceledException",
            "Transaction cancelled",
            modeled_fields={
                "CancellationReasons": [{"Code": "ConditionalCheckFailed"}, {"Code": "None"}]
            },
        )
        started = clock.time()
        with pytest.raises(ConflictError, match=f"change {change.change_id} changed"):
            store.update_change(updated, change.version, entry)
        stub.assert_no_pending_responses()
    assert clock.time() > started  # it backed off once


def test_floats_round_trip_exactly(aws: Aws, table: str) -> None:
    store = DynamoStore(aws.dynamodb, table)
    batch, (change,), audit = new_batch("b1", lines(1), at=1_800_000_000.123456)
    store.create_batch(batch, [change], audit)
    odd = (0.1 + 0.2, 1e-7, 1_234_567_890.000_001, 2.5e20, 1_800_000_000.0)
    for deadline in odd:
        current = store.get_change(change.change_id)
        assert current is not None
        written, entry = next_change(current, deadline=deadline, at=deadline)
        store.update_change(written, current.version, entry)
        back = store.get_change(change.change_id)
        assert back == written
        assert back is not None
        assert repr(back.deadline) == repr(deadline)
        assert store.audit(entry.subject)[-1].at == deadline
    raw = aws.dynamodb.get_item(
        TableName=table, Key={"pk": {"S": f"CHANGE#{change.change_id}"}, "sk": {"S": "META"}}
    )["Item"]
    assert raw["record"]["M"]["created_at"] == {"N": "1800000000.123456"}
    assert to_dynamo({"x": 0.1, "n": [1, True, None]}) == {
        "x": Decimal("0.1"),
        "n": [1, True, None],
    }
    assert from_dynamo({"x": Decimal("0.1"), "i": Decimal("3")}) == {"x": 0.1, "i": 3}
    with pytest.raises(ValueError, match="nan"):
        to_dynamo(float("nan"))
