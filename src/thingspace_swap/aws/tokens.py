"""The documented path of the DynamoDB token cache, kept as an alias: the cache lives in
``thingspace_swap.backends.aws.tokens``."""

from __future__ import annotations

from ..backends.aws.tokens import DynamoTokenCache

__all__ = ["DynamoTokenCache"]
