"""Credentials and client settings."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import attrs

from ._secret import Secret
from .errors import ConfigurationError

__all__ = ["PRODUCTION_URL", "STAGING_URL", "Credentials"]

PRODUCTION_URL = "https://thingspace.verizon.com"
STAGING_URL = "https://staging.thingspace.verizon.com"

_ENV_NAMES = {
    "app_key": "THINGSPACE_APP_KEY",
    "app_secret": "THINGSPACE_APP_SECRET",
    "username": "THINGSPACE_USERNAME",
    "password": "THINGSPACE_PASSWORD",
}


def _non_empty(instance: Any, attribute: Any, value: Any) -> None:
    if not value:
        raise ConfigurationError(f"Credentials.{attribute.name} must not be empty")


@attrs.frozen
class Credentials:
    """What ThingSpace needs to let the client in.

    ``app_key``/``app_secret`` obtain the OAuth2 bearer token; ``username``/``password`` (the UWS
    user) open the M2M session. The secrets are held as :class:`Secret` and never printed.
    """

    app_key: str = attrs.field(validator=_non_empty)
    app_secret: Secret = attrs.field(converter=Secret, validator=_non_empty)
    username: str = attrs.field(validator=_non_empty)
    password: Secret = attrs.field(converter=Secret, validator=_non_empty)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Credentials:
        """Read ``THINGSPACE_APP_KEY``, ``THINGSPACE_APP_SECRET``, ``THINGSPACE_USERNAME`` and
        ``THINGSPACE_PASSWORD``; a missing one raises :class:`ConfigurationError` naming it."""
        env = os.environ if environ is None else environ
        missing = [name for name in _ENV_NAMES.values() if not env.get(name)]
        if missing:
            raise ConfigurationError(f"missing environment variable(s): {', '.join(missing)}")
        return cls(**{field: env[name] for field, name in _ENV_NAMES.items()})
