"""The swap store on one DynamoDB table:
[DynamoStore][thingspace_swap.backends.aws.dynamodb.store.DynamoStore] implements
[Store][thingspace_swap.swap.ports.Store];
[table_definition][thingspace_swap.backends.aws.dynamodb.table.table_definition] describes the table
(as ``CreateTable`` and CloudFormation's ``AWS::DynamoDB::Table`` take it) and
[create_table][thingspace_swap.backends.aws.dynamodb.table.create_table] makes it.

The store's rules are written once, in ``store``, over small parts, each a module:

* ``table``: the table and its two indexes (``batches``, ``due``);
* ``items``: the records as items, their keys and the number codec;
* ``writes``: the conditional writes that go in one transaction with a record;
* ``creation``: a new batch, all or nothing, and what a crashed creation leaves;
* ``outbox``: queue messages written with a record, relayed once it is written;
* ``calls``: the DynamoDB calls, retried while throttled.
"""

from __future__ import annotations

from .store import DynamoStore
from .table import create_table, table_definition

__all__ = ["DynamoStore", "create_table", "table_definition"]
