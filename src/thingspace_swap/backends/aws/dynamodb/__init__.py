"""The swap store on one DynamoDB table: :class:`DynamoStore` implements
:class:`~thingspace_swap.swap.ports.Store`; :func:`table_definition` describes the table (as
``CreateTable`` and CloudFormation's ``AWS::DynamoDB::Table`` take it) and :func:`create_table`
makes it.

The store's rules are written once, in :mod:`.store`, over small parts, each a module:

* :mod:`.table`: the table and its two indexes (``batches``, ``due``);
* :mod:`.items`: the records as items, their keys and the number codec;
* :mod:`.writes`: the conditional writes that go in one transaction with a record;
* :mod:`.creation`: a new batch, all or nothing, and what a crashed creation leaves;
* :mod:`.outbox`: queue messages written with a record, relayed once it is written;
* :mod:`.calls`: the DynamoDB calls, retried while throttled.
"""

from __future__ import annotations

from .store import DynamoStore
from .table import create_table, table_definition

__all__ = ["DynamoStore", "create_table", "table_definition"]
