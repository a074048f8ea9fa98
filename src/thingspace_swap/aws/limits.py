"""Limits of the intake (docs/aws.md, "Limits"): the input is bounded, and so is every answer.

The answers read these at call time, so a test may lower one (``RESPONSE_BUDGET``) here.
"""

from __future__ import annotations

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_IDENTIFIER_LENGTH",
    "MAX_ITEMS",
    "MAX_KIND_LENGTH",
    "MAX_NAME_LENGTH",
    "PROBLEMS_LISTED",
    "RESPONSE_BUDGET",
]

#: Items in one batch request, whatever ``SWAP_MAX_ITEMS`` says: ThingSpace takes at most
#: 10,000 devices in one request (more is ``MaxRequestsExceeded``).
MAX_ITEMS = 10_000
#: Characters of an identifier (surrounding whitespace aside): an EID, the longest, has 32.
MAX_IDENTIFIER_LENGTH = 32
#: Characters of a ``device_kind`` (the kinds have at most 6 letters).
MAX_KIND_LENGTH = 16
#: Characters of a plan code and of an account name.
MAX_NAME_LENGTH = 64
#: Bytes of a request body: ``MAX_ITEMS`` items of up to 300 bytes each (an item with every
#: field, indented, takes about 230).
MAX_BODY_BYTES = 300 * MAX_ITEMS
#: Bytes of an answer as Lambda's runtime sends it (the whole answer JSON-encoded, the body
#: escaped once more), well below Lambda's 6 MB limit for a synchronous answer.
RESPONSE_BUDGET = 4_000_000
#: Problems of devices an answer lists with their message; beyond them, codes and counts.
PROBLEMS_LISTED = 100
#: What an answer takes besides its body (status, headers, the body's quotes), generously.
ENVELOPE = 1_000
#: Characters of a text field of one record in an answer (longer text is cut, and says so).
MAX_TEXT = 1_000
