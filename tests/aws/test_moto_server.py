"""The test server behaves as DynamoDB: transactions all or nothing, conditions first, items
read back as written; and it runs in a process of its own when asked."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.aws.moto_server import client, moto_server_process
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


EVERY_TYPE: dict[str, Any] = {
    "k": {"S": "every-type"},
    "s": {"S": 'naïve \u2603 "quoted"'},
    "n": {"N": "-12.50"},
    "yes": {"BOOL": True},
    "nothing": {"NULL": True},
    "map": {"M": {"inner": {"L": [{"S": "x"}, {"N": "1"}, {"M": {}}]}, "empty": {"S": ""}}},
    "strings": {"SS": ["a", "b"]},
    "numbers": {"NS": ["1", "2.5"]},
}
BINARY: dict[str, Any] = {"raw": {"B": b"\x00\xffbytes"}, "raws": {"BS": [b"\x01", b"\x02"]}}


@pytest.mark.parametrize("extra", [{}, BINARY], ids=["json", "binary"])
def test_items_read_back_exactly_as_written_by_every_read(
    aws: Aws, kv: str, extra: dict[str, Any]
) -> None:
    item = EVERY_TYPE | extra
    aws.dynamodb.put_item(TableName="kv", Item=item)
    key = {"k": item["k"]}

    def same(found: dict[str, Any]) -> None:
        sets = ("strings", "numbers", "raws")
        assert {n: v for n, v in found.items() if n not in sets} == {
            n: v for n, v in item.items() if n not in sets
        }
        for name in sets:
            if name in item:
                kind, values = next(iter(item[name].items()))
                assert sorted(found[name][kind]) == sorted(values)

    same(aws.dynamodb.get_item(TableName="kv", Key=key, ConsistentRead=True)["Item"])
    (row,) = aws.dynamodb.query(
        TableName="kv",
        KeyConditionExpression="k = :k",
        ExpressionAttributeValues={":k": item["k"]},
    )["Items"]
    same(row)
    same(aws.dynamodb.batch_get_item(RequestItems={"kv": {"Keys": [key]}})["Responses"]["kv"][0])
    old = aws.dynamodb.update_item(
        TableName="kv",
        Key=key,
        UpdateExpression="SET v = :v",
        ExpressionAttributeValues={":v": {"N": "7"}},
        ReturnValues="ALL_OLD",
    )["Attributes"]
    same(old)


def test_what_is_absent_is_left_out_not_sent_as_null(aws: Aws, kv: str) -> None:
    missing = aws.dynamodb.get_item(TableName="kv", Key={"k": {"S": "nope"}})
    assert "Item" not in missing
    aws.dynamodb.put_item(TableName="kv", Item={"k": {"S": "b"}})
    first = aws.dynamodb.scan(TableName="kv", Limit=1)
    assert "LastEvaluatedKey" in first
    pages = [first]
    while "LastEvaluatedKey" in pages[-1]:
        pages.append(
            aws.dynamodb.scan(
                TableName="kv", Limit=1, ExclusiveStartKey=pages[-1]["LastEvaluatedKey"]
            )
        )
    assert sorted(r["k"]["S"] for p in pages for r in p["Items"]) == ["a", "b"]
    assert len(pages) <= 3


def test_the_server_runs_in_a_process_of_its_own_and_stops_with_it() -> None:
    with moto_server_process() as endpoint:
        sqs = client(endpoint, "sqs")
        url = sqs.create_queue(QueueName="q")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="hello")
        (message,) = sqs.receive_message(QueueUrl=url)["Messages"]
        assert message["Body"] == "hello"
        port = int(endpoint.rsplit(":", 1)[1])
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
