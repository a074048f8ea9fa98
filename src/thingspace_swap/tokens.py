"""The two ThingSpace credentials a client holds, and the hook to share them across processes."""

from __future__ import annotations

from typing import Protocol

import attrs

from ._secret import Secret

__all__ = ["InMemoryTokenCache", "TokenCache", "Tokens"]


@attrs.frozen
class Tokens:
    """A snapshot of the bearer token (with its expiry, epoch seconds) and the M2M session token."""

    bearer: Secret | None = None
    bearer_expires_at: float | None = None
    session: Secret | None = None

    def bearer_valid(self, now: float, leeway: float) -> bool:
        return self.bearer is not None and (
            self.bearer_expires_at is None or now < self.bearer_expires_at - leeway
        )


class TokenCache(Protocol):
    """Where a client keeps its tokens so a later client (a warm Lambda, another worker) can reuse
    them instead of asking ThingSpace again. Keys name the app key and user, never a secret."""

    def load(self, key: str) -> Tokens | None:
        """The tokens stored under ``key``, if any."""
        ...

    def store(self, key: str, tokens: Tokens) -> None:
        """Remember ``tokens`` under ``key``."""
        ...


class InMemoryTokenCache:
    """A process-local cache: keep one at module level in a Lambda handler to reuse tokens
    across warm invocations."""

    def __init__(self) -> None:
        self._entries: dict[str, Tokens] = {}

    def load(self, key: str) -> Tokens | None:
        return self._entries.get(key)

    def store(self, key: str, tokens: Tokens) -> None:
        self._entries[key] = tokens

    def __repr__(self) -> str:
        return f"InMemoryTokenCache(keys={sorted(self._entries)})"
