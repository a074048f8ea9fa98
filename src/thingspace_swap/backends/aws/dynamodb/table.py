"""The table: [table_definition][thingspace_swap.backends.aws.dynamodb.table.table_definition]
describes it (as ``CreateTable`` and CloudFormation's ``AWS::DynamoDB::Table`` take it) and
[create_table][thingspace_swap.backends.aws.dynamodb.table.create_table] makes it.

Keys are ``pk`` / ``sk``, both strings (the items are in ``items``). Two global secondary
indexes, both sparse and ``KEYS_ONLY``: ``batches`` (``batch_state`` = ``OPEN`` or ``DONE``,
``created_key``) lists batches, and ``due`` (``due_pk`` = ``DUE``, ``due_at``) finds changes
whose deadline passed. Index reads are eventually consistent, so the records they point at are
read again (``BatchGetItem``, consistent) and checked. Everything a callback or a worker
depends on (a change by request id or device, a batch's members, line claims) is a base-table
item written in the same transaction as the change, read consistently. ``due`` is one
partition: fine for thousands of writes per second.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BATCHES_INDEX", "DUE_INDEX", "create_table", "table_definition"]

BATCHES_INDEX = "batches"
DUE_INDEX = "due"


def table_definition() -> dict[str, Any]:
    """``KeySchema``, ``AttributeDefinitions``, ``GlobalSecondaryIndexes`` and ``BillingMode``
    of the table, as ``CreateTable`` and CloudFormation's ``AWS::DynamoDB::Table`` take them."""
    return {
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "batch_state", "AttributeType": "S"},
            {"AttributeName": "created_key", "AttributeType": "S"},
            {"AttributeName": "due_pk", "AttributeType": "S"},
            {"AttributeName": "due_at", "AttributeType": "N"},
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": BATCHES_INDEX,
                "KeySchema": [
                    {"AttributeName": "batch_state", "KeyType": "HASH"},
                    {"AttributeName": "created_key", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
            {
                "IndexName": DUE_INDEX,
                "KeySchema": [
                    {"AttributeName": "due_pk", "KeyType": "HASH"},
                    {"AttributeName": "due_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }


def create_table(dynamodb: Any, name: str, *, wait: bool = True) -> str:
    """Create the table ``name`` (see
    [table_definition][thingspace_swap.backends.aws.dynamodb.table.table_definition]); returns its
    ARN."""
    created = dynamodb.create_table(TableName=name, **table_definition())
    if wait:
        dynamodb.get_waiter("table_exists").wait(
            TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
        )
    return str(created["TableDescription"]["TableArn"])
