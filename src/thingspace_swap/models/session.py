"""The two credentials' wire shapes: the OAuth2 token and the M2M session."""

from __future__ import annotations

import attrs

from .._secret import Secret

__all__ = ["LoginRequest", "LoginResponse", "OAuthToken"]


def _secret(value: str | Secret) -> Secret:
    return Secret(value)


@attrs.frozen
class OAuthToken:
    """``POST /api/ts/v1/oauth2/token`` response (snake_case on the wire, as OAuth2 has it)."""

    access_token: Secret = attrs.field(converter=_secret, metadata={"wire": "access_token"})
    expires_in: float = attrs.field(default=3600.0, metadata={"wire": "expires_in"})
    token_type: str = attrs.field(default="Bearer", metadata={"wire": "token_type"})
    scope: str | None = None


@attrs.frozen
class LoginRequest:
    username: str
    password: Secret = attrs.field(converter=_secret)


@attrs.frozen
class LoginResponse:
    """``{"sessionToken": ...}``; an expiry field, if ThingSpace ever sends one, is ignored."""

    session_token: Secret = attrs.field(converter=_secret)
