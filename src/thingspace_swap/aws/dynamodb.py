"""The documented path of the DynamoDB store, kept as an alias: the store lives in
``thingspace_swap.backends.aws.dynamodb``."""

from __future__ import annotations

from ..backends.aws.dynamodb import DynamoStore, create_table, table_definition

__all__ = ["DynamoStore", "create_table", "table_definition"]
