"""Credentials and client settings."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs

from ._secret import Secret
from .errors import ConfigurationError

__all__ = [
    "BASE_URL_ENV",
    "PRODUCTION_URL",
    "STAGING_URL",
    "Credentials",
    "check_base_url",
    "default_base_url",
]

PRODUCTION_URL = "https://thingspace.verizon.com"
STAGING_URL = "https://staging.thingspace.verizon.com"
#: The environment variable that overrides the default base URL (a simulator, staging).
BASE_URL_ENV = "THINGSPACE_BASE_URL"

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
    user) open the M2M session. The secrets are held as [Secret][thingspace_swap.Secret] and never
    printed.
    """

    app_key: str = attrs.field(validator=_non_empty)
    app_secret: Secret = attrs.field(converter=Secret, validator=_non_empty)
    username: str = attrs.field(validator=_non_empty)
    password: Secret = attrs.field(converter=Secret, validator=_non_empty)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Credentials:
        """Read ``THINGSPACE_APP_KEY``, ``THINGSPACE_APP_SECRET``, ``THINGSPACE_USERNAME`` and
        ``THINGSPACE_PASSWORD``; a missing one raises
        [ConfigurationError][thingspace_swap.errors.ConfigurationError] naming it."""
        env = os.environ if environ is None else environ
        missing = [name for name in _ENV_NAMES.values() if not env.get(name)]
        if missing:
            raise ConfigurationError(f"missing environment variable(s): {', '.join(missing)}")
        return cls(**{field: env[name] for field, name in _ENV_NAMES.items()})


def default_base_url(environ: Mapping[str, str] | None = None) -> str:
    """The base URL a client uses when given none: ``THINGSPACE_BASE_URL`` when set (staging,
    a simulator), else ``PRODUCTION_URL``.

    The variable must pass ``check_base_url``, else
    [ConfigurationError][thingspace_swap.errors.ConfigurationError].
    """
    env = os.environ if environ is None else environ
    url = env.get(BASE_URL_ENV, "").strip()
    return check_base_url(url, name=BASE_URL_ENV) if url else PRODUCTION_URL


def check_base_url(url: str, *, name: str = "the base URL") -> str:
    """``url`` without its trailing ``/``, if it is an ``https`` URL or plain ``http`` to a
    loopback host (a local simulator): credentials never cross a network unencrypted.

    Anything else raises [ConfigurationError][thingspace_swap.errors.ConfigurationError] naming
    ``name``, where the URL came from (``THINGSPACE_BASE_URL``, ``--base-url``...), and never the
    URL: it may carry a password.
    """
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed [IPv6 address
        parts = urlsplit("")
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigurationError(f"{name} must be an http(s) URL with a host")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise ConfigurationError(
            f"{name}: refusing plain HTTP to {parts.hostname} (credentials would be sent "
            "unencrypted); use https"
        )
    return url.rstrip("/")


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
