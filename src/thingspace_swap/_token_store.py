"""What the token caches that write outside the process share: an
[AuthRecord][thingspace_swap.tokens.AuthRecord] as flat fields, tokens that expire by themselves,
and optional encryption of the tokens."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ._secret import Secret
from .errors import ConfigurationError
from .tokens import AuthRecord, LoginBlock, LoginLease, Tokens

__all__ = ["MAX_TOKEN_AGE", "RecordCodec"]

#: Stored tokens are dropped after this many seconds at most (the OAuth token's hour), or when
#: the bearer expires, whichever comes first.
MAX_TOKEN_AGE = 3600.0

_SEALED = "fernet:"


class RecordCodec:
    """Turns records into flat fields and back, sealing the tokens when given a key.

    Args:
        encryption_key: A Fernet key (``cryptography.fernet.Fernet.generate_key()``): the bearer
            and session tokens are then stored encrypted (AES-128-CBC with HMAC-SHA256).
    """

    def __init__(self, encryption_key: str | bytes | Secret | None = None) -> None:
        self._fernet: Any = None
        if encryption_key is not None:
            key = encryption_key.reveal() if isinstance(encryption_key, Secret) else encryption_key
            try:
                from cryptography.fernet import Fernet
            except ImportError:  # pragma: no cover - authlib depends on cryptography
                raise ConfigurationError("encryption_key needs cryptography") from None
            try:
                self._fernet = Fernet(key)
            except (ValueError, TypeError):
                raise ConfigurationError(
                    "encryption_key must be a Fernet key (32 url-safe base64-encoded bytes)"
                ) from None

    @property
    def sealed(self) -> bool:
        """Whether tokens are stored encrypted."""
        return self._fernet is not None

    def dump(
        self, record: AuthRecord, previous: AuthRecord, expires_at: float | None, now: float
    ) -> dict[str, Any]:
        """``record`` as fields; the tokens keep ``expires_at`` (the stored one) when they are
        ``previous``'s, else expire at the bearer's expiry or in ``MAX_TOKEN_AGE``."""
        tokens = record.tokens
        if tokens == Tokens():
            expiry = None
        elif tokens == previous.tokens and expires_at is not None:
            expiry = expires_at
        else:
            limit = now + MAX_TOKEN_AGE
            bearer_end = tokens.bearer_expires_at
            expiry = limit if bearer_end is None else min(bearer_end, limit)
        block, lease = record.block, record.lease
        return {
            "bearer": self._seal(tokens.bearer),
            "bearer_expires_at": tokens.bearer_expires_at,
            "session": self._seal(tokens.session),
            "tokens_expire_at": expiry,
            "block_reason": block.reason if block else None,
            "block_code": block.code if block else None,
            "block_status": block.status_code if block else None,
            "block_since": block.since if block else None,
            "block_by": block.by if block else None,
            "unconfirmed": record.unconfirmed,
            "lease_owner": lease.owner if lease else None,
            "lease_until": lease.until if lease else None,
        }

    def load(self, fields: Mapping[str, Any], now: float) -> AuthRecord:
        """The record in ``fields``; tokens past their expiry (or unreadable) are left out."""
        tokens = Tokens()
        expiry = _number(fields.get("tokens_expire_at"))
        if expiry is not None and now < expiry:
            bearer = self._open(fields.get("bearer"))
            session = self._open(fields.get("session"))
            if bearer is not None or session is not None:
                tokens = Tokens(bearer, _number(fields.get("bearer_expires_at")), session)
        block = None
        if fields.get("block_reason") is not None:
            status = _number(fields.get("block_status"))
            block = LoginBlock(
                reason=str(fields["block_reason"]),
                code=None if fields.get("block_code") is None else str(fields["block_code"]),
                status_code=None if status is None else int(status),
                since=_number(fields.get("block_since")) or 0.0,
                by=str(fields.get("block_by") or ""),
            )
        lease = None
        until = _number(fields.get("lease_until"))
        if fields.get("lease_owner") is not None and until is not None:
            lease = LoginLease(str(fields["lease_owner"]), until)
        unconfirmed = int(_number(fields.get("unconfirmed")) or 0)
        return AuthRecord(tokens, block, unconfirmed, lease)

    def _seal(self, value: Secret | None) -> str | None:
        if value is None:
            return None
        if self._fernet is None:
            return value.reveal()
        sealed: bytes = self._fernet.encrypt(value.reveal().encode())
        return _SEALED + sealed.decode("ascii")

    def _open(self, value: Any) -> Secret | None:
        if not isinstance(value, str) or not value:
            return None
        if not value.startswith(_SEALED):
            return Secret(value)
        if self._fernet is None:
            return None  # sealed by a cache with a key: unreadable here, fetched again
        from cryptography.fernet import InvalidToken

        try:
            return Secret(self._fernet.decrypt(value[len(_SEALED) :].encode()).decode())
        except (InvalidToken, ValueError):
            return None  # another key: unreadable, fetched again


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None
