"""What the Lambda functions read from their environment: ``LambdaConfig``, the
package's log level and the boto3 clients they make."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from typing import Any

import attrs
import boto3
from botocore.config import Config

from .._secret import Secret
from ..backends.aws._common import error_code
from ..config import PRODUCTION_URL, Credentials
from ..errors import ConfigurationError
from ..swap.events import LifecycleSettings

__all__ = ["LambdaConfig", "boto_client", "configure_logging", "logger"]

logger = logging.getLogger("thingspace_swap.aws.lambda")
"""The functions' logger (events are never logged: a callback's body carries its password)."""

_REQUIRED = ("SWAP_QUEUE_URL", "SWAP_DLQ_URL", "SWAP_TABLE")
_SECRET_KEYS = ("app_key", "app_secret", "username", "password")


@attrs.frozen
class LambdaConfig:
    """Everything the handlers read from the environment (see ``from_env``)."""

    credentials: Credentials
    queue_url: str
    dead_letter_url: str
    table_name: str
    account_name: str | None = None
    base_url: str = PRODUCTION_URL
    high_queue_url: str | None = None
    topic_arn: str | None = None
    callback_username: str | None = None
    callback_password: Secret | None = attrs.field(default=None, repr=False)
    callback_sources: tuple[str, ...] | None = None
    max_receives: int | None = None
    max_items: int = 1000
    worker_concurrency: int = 1
    rate_limit: int | None = None
    settings: LifecycleSettings = attrs.Factory(LifecycleSettings)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, secrets: Any = None
    ) -> LambdaConfig:
        """Read the configuration.

        ThingSpace credentials come from the Secrets Manager secret ``THINGSPACE_SECRET_ARN``
        (JSON: ``app_key``, ``app_secret``, ``username``, ``password``, optionally
        ``callback_username`` and ``callback_password``), else from ``THINGSPACE_APP_KEY``,
        ``THINGSPACE_APP_SECRET``, ``THINGSPACE_USERNAME`` and ``THINGSPACE_PASSWORD``. The
        callback credentials come from the secret, else ``CALLBACK_USERNAME`` and
        ``CALLBACK_PASSWORD``. Required: ``SWAP_QUEUE_URL``, ``SWAP_DLQ_URL``, ``SWAP_TABLE``.
        Optional: ``THINGSPACE_ACCOUNT``, ``THINGSPACE_BASE_URL`` (production),
        ``SWAP_HIGH_QUEUE_URL``, ``SWAP_TOPIC_ARN``, ``SWAP_MAX_RECEIVES``, ``SWAP_MAX_ITEMS``
        (1000), ``SWAP_WORKER_CONCURRENCY`` (message groups a worker invocation processes at
        once; 1), ``THINGSPACE_RATE_LIMIT`` (requests per second for the whole account, shared
        by every function and container; unset or 0: no limit), ``CALLBACK_ALLOWED_SOURCES``
        (comma-separated addresses or networks) and ``SWAP_<FIELD>`` for each
        [LifecycleSettings][thingspace_swap.swap.LifecycleSettings] field (``SWAP_LEASE=120``).

        Args:
            environ: The variables (``os.environ`` by default).
            secrets: A Secrets Manager client (made with boto3 when needed and not given).

        Raises:
            ConfigurationError: Naming what is missing or malformed, never a value.
        """
        env = os.environ if environ is None else environ
        missing = [name for name in _REQUIRED if not env.get(name)]
        if missing:
            raise ConfigurationError(f"missing environment variable(s): {', '.join(missing)}")
        credentials, secret = _credentials(env, secrets)
        password = secret.get("callback_password") or env.get("CALLBACK_PASSWORD")
        sources = env.get("CALLBACK_ALLOWED_SOURCES")
        return cls(
            credentials=credentials,
            queue_url=env["SWAP_QUEUE_URL"],
            dead_letter_url=env["SWAP_DLQ_URL"],
            table_name=env["SWAP_TABLE"],
            account_name=env.get("THINGSPACE_ACCOUNT") or None,
            base_url=env.get("THINGSPACE_BASE_URL") or PRODUCTION_URL,
            high_queue_url=env.get("SWAP_HIGH_QUEUE_URL") or None,
            topic_arn=env.get("SWAP_TOPIC_ARN") or None,
            callback_username=secret.get("callback_username") or env.get("CALLBACK_USERNAME"),
            callback_password=Secret(password) if password else None,
            callback_sources=(
                tuple(s.strip() for s in sources.split(",") if s.strip()) if sources else None
            ),
            max_receives=_number(env, "SWAP_MAX_RECEIVES", None),
            max_items=max(1, _number(env, "SWAP_MAX_ITEMS", 1000) or 1000),
            worker_concurrency=max(1, _number(env, "SWAP_WORKER_CONCURRENCY", 1) or 1),
            rate_limit=_rate_limit(env),
            settings=_settings_from_env(env),
        )


def configure_logging(env: Mapping[str, str]) -> None:
    """Set the package's log level from ``LOG_LEVEL`` (INFO by default)."""
    level = env.get("LOG_LEVEL", "INFO").upper()
    if not isinstance(logging.getLevelName(level), int):
        raise ConfigurationError("LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR")
    logging.getLogger("thingspace_swap").setLevel(level)


def boto_client(service: str) -> Any:
    """A boto3 client (region and ``AWS_ENDPOINT_URL`` from the environment, as boto3 reads
    them) with standard retries."""
    config = Config(
        retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=30
    )
    return boto3.session.Session().client(service, config=config)


def _credentials(env: Mapping[str, str], secrets: Any) -> tuple[Credentials, dict[str, str]]:
    """The ThingSpace credentials, and the secret they came from (empty without one)."""
    arn = env.get("THINGSPACE_SECRET_ARN")
    if not arn:
        return Credentials.from_env(env), {}
    secret = _read_secret(secrets or boto_client("secretsmanager"), arn)
    absent = [key for key in _SECRET_KEYS if not secret.get(key)]
    if absent:
        raise ConfigurationError(f"the secret {arn} lacks {', '.join(absent)}")
    return Credentials(*(secret[key] for key in _SECRET_KEYS)), secret


def _read_secret(client: Any, arn: str) -> dict[str, str]:
    """The JSON object in the secret ``arn`` (errors name the secret, never its value)."""
    try:
        text = client.get_secret_value(SecretId=arn).get("SecretString")
    except Exception as error:
        code = error_code(error) or type(error).__name__
        raise ConfigurationError(f"cannot read the secret {arn} ({code})") from None
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise ConfigurationError(f"the secret {arn} is not a JSON object")
    return {str(k): v for k, v in value.items() if isinstance(v, str)}


def _settings_from_env(env: Mapping[str, str]) -> LifecycleSettings:
    """``LifecycleSettings`` with any field overridden by ``SWAP_<FIELD>`` (``SWAP_LEASE``...)."""
    values: dict[str, Any] = {}
    for field in attrs.fields(LifecycleSettings):
        name = f"SWAP_{field.name.upper()}"
        raw = env.get(name)
        if not raw:
            continue
        kind = int if isinstance(field.default, int) else float
        try:
            values[field.name] = kind(raw)
        except ValueError:
            raise ConfigurationError(f"{name} must be a number") from None
    return LifecycleSettings(**values)


def _rate_limit(env: Mapping[str, str]) -> int | None:
    """``THINGSPACE_RATE_LIMIT``: requests per second, None for no limit (unset or 0)."""
    rate = _number(env, "THINGSPACE_RATE_LIMIT", None)
    if rate is not None and rate < 0:
        raise ConfigurationError("THINGSPACE_RATE_LIMIT must be 0 (no limit) or more")
    return rate or None


def _number(env: Mapping[str, str], name: str, default: int | None) -> int | None:
    raw = env.get(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number") from None
