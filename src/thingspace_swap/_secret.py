"""A string that never shows itself in reprs, logs or exception texts."""

from __future__ import annotations

import hmac
from typing import Any, final


@final
class Secret:
    """Holds a secret value; ``repr``/``str`` print asterisks. Read it with
    [reveal][thingspace_swap.Secret.reveal]."""

    __slots__ = ("_value",)

    def __init__(self, value: str | Secret) -> None:
        self._value = value.reveal() if isinstance(value, Secret) else str(value)

    def reveal(self) -> str:
        """The secret itself: pass it only to the wire."""
        return self._value

    def matches(self, candidate: str) -> bool:
        """Compare with ``candidate`` in constant time."""
        encode = "utf-8", "surrogatepass"  # JSON may carry lone surrogates
        return hmac.compare_digest(self._value.encode(*encode), candidate.encode(*encode))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __str__(self) -> str:
        return "**********"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and self.matches(other._value)

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> tuple[Any, ...]:
        return (Secret, (self._value,))
