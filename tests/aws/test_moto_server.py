"""The test server's transactions behave as DynamoDB's: all or nothing, conditions first."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.aws.support import Aws


@pytest.fixture
def kv(aws: Aws) -> str:
    aws.dynamodb.create_table(
        TableName="kv",
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    aws.dynamodb.put_item(TableName="kv", Item={"k": {"S": "a"}, "v": {"N": "1"}})
    return "kv"


def items(aws: Aws) -> dict[str, Any]:
    rows = aws.dynamodb.scan(TableName="kv")["Items"]
    return {row["k"]["S"]: row.get("v", {}).get("N") for row in rows}


def put(key: str, value: str, condition: str | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"TableName": "kv", "Item": {"k": {"S": key}, "v": {"N": value}}}
    if condition:
        op["ConditionExpression"] = condition
    return {"Put": op}


def test_a_failed_condition_cancels_every_write_and_reports_each_reason(aws: Aws, kv: str) -> None:
    failing = put("a", "2", "attribute_not_exists(k)")
    failing["Put"]["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    with pytest.raises(ClientError) as caught:
        aws.dynamodb.transact_write_items(TransactItems=[put("b", "1"), failing])
    error = caught.value.response
    assert error["Error"]["Code"] == "TransactionCanceledException"
    reasons = error["CancellationReasons"]
    assert [r["Code"] for r in reasons] == ["None", "ConditionalCheckFailed"]
    assert reasons[1]["Item"] == {"k": {"S": "a"}, "v": {"N": "1"}}
    assert items(aws) == {"a": "1"}


def test_conditions_see_the_items_as_they_were_before_the_transaction(aws: Aws, kv: str) -> None:
    aws.dynamodb.transact_write_items(
        TransactItems=[
            put("b", "1", "attribute_not_exists(k)"),
            {
                "Update": {
                    "TableName": "kv",
                    "Key": {"k": {"S": "a"}},
                    "UpdateExpression": "SET v = :new",
                    "ConditionExpression": "v = :old",
                    "ExpressionAttributeValues": {":new": {"N": "2"}, ":old": {"N": "1"}},
                }
            },
        ]
    )
    assert items(aws) == {"a": "2", "b": "1"}


def test_a_write_that_fails_undoes_the_writes_before_it(aws: Aws, kv: str) -> None:
    broken = {
        "Update": {
            "TableName": "kv",
            "Key": {"k": {"S": "a"}},
            "UpdateExpression": "SET v = v + :one",
            "ExpressionAttributeValues": {":one": {"S": "not a number"}},
        }
    }
    with pytest.raises(ClientError) as caught:
        aws.dynamodb.transact_write_items(TransactItems=[put("b", "1"), put("c", "1"), broken])
    assert caught.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert items(aws) == {"a": "1"}


def test_two_operations_on_one_item_are_refused(aws: Aws, kv: str) -> None:
    with pytest.raises(ClientError) as caught:
        aws.dynamodb.transact_write_items(TransactItems=[put("b", "1"), put("b", "2")])
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert items(aws) == {"a": "1"}


def test_a_query_finds_its_partition_and_its_index_items_in_order(aws: Aws) -> None:
    aws.dynamodb.create_table(
        TableName="t",
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": a, "AttributeType": t}
            for a, t in (("pk", "S"), ("sk", "S"), ("g", "S"), ("n", "N"))
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by_g",
                "KeySchema": [
                    {"AttributeName": "g", "KeyType": "HASH"},
                    {"AttributeName": "n", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    for p in range(5):
        for s in (3, 1, 2):
            item = {"pk": {"S": f"P{p}"}, "sk": {"S": f"S{s}"}}
            if s != 2:
                item |= {"g": {"S": f"G{p % 2}"}, "n": {"N": str(10 * p + s)}}
            aws.dynamodb.put_item(TableName="t", Item=item)
    rows = aws.dynamodb.query(
        TableName="t",
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": "P3"}},
    )["Items"]
    assert [(r["pk"]["S"], r["sk"]["S"]) for r in rows] == [
        ("P3", "S1"),
        ("P3", "S2"),
        ("P3", "S3"),
    ]
    rows = aws.dynamodb.query(
        TableName="t",
        IndexName="by_g",
        KeyConditionExpression="g = :g AND n <= :n",
        ExpressionAttributeValues={":g": {"S": "G1"}, ":n": {"N": "31"}},
    )["Items"]
    assert [(r["pk"]["S"], r["n"]["N"]) for r in rows] == [("P1", "11"), ("P1", "13"), ("P3", "31")]
    empty = aws.dynamodb.query(
        TableName="t",
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": "nope"}},
    )
    assert empty["Items"] == []
    assert empty["Count"] == 0
