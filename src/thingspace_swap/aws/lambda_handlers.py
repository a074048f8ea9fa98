"""AWS Lambda entry points: plain functions over the event, configured from the environment.

* ``intake_handler`` (API Gateway, REST v1 or HTTP API v2 events): ``POST /batches``,
  ``GET /batches/{id}``, ``POST /batches/{id}/retry``, ``POST /batches/{id}/cancel``.
* ``worker_handler`` (SQS events, with ``ReportBatchItemFailures``): ``orchestrator.process``
  for each record.
* ``callback_handler`` (API Gateway): ThingSpace's CarrierService callbacks, through
  :class:`~thingspace_swap.swap.callbacks.CallbackIntake`.
* ``reconciler_handler`` (EventBridge schedule): ``orchestrator.sweep()``.

Each module-level handler delegates to :class:`Handlers`, built once per process by
:meth:`Handlers.from_env` and kept for the life of the execution environment (a
``functools.cache``: the accepted Lambda pattern, and the one deliberate module-level cache of
this package), so boto3 clients, the ThingSpace client and its tokens are reused across warm
invocations. Tests build ``Handlers(runtime)`` with a runtime of their own
(:func:`build_runtime`).

The worker answers ``{"batchItemFailures": [...]}`` (as AWS Lambda Powertools' batch processor
does): a record is a failure when its change was busy, it was not due yet or processing it
failed; every such message was already made visible again when it should be retried
(``release``), so Lambda's own handling of failures only keeps it in the queue. On a FIFO
queue the first failure of a message group stops that group: its later records of the batch are
put back unprocessed and reported too. A poison record is dead-lettered with its reason by
``process`` and counts as a success, so it never blocks its batch. The invocation raises
:class:`BatchFailedError` only when every record failed with an *error*; records that were
merely deferred (busy or not due) are normal flow control, and failing the invocation for them
would raise Lambda's error metrics and make the event source back off for nothing.

Answers are JSON; errors are ``{"error": ...}`` with 400 (bad JSON or shape, a field over its
limit), 404, 405, 409 (a line was taken meanwhile), 413 (too many items, too large a body), 422
(nothing valid, with the report), 502 (ThingSpace failed), 503 with ``Retry-After`` (ThingSpace
throttled) or 500, never with a traceback or a secret. The intake's input is bounded and every
answer is built to fit ``RESPONSE_BUDGET``, well below Lambda's 6 MB (``MAX_ITEMS`` and the
other limits below; docs/aws.md, "Limits").
Events are never logged: a callback's body carries its password.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import logging
import math
import os
import re
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, Literal

import attrs
import boto3
from botocore.config import Config

from .._secret import Secret
from ..backends.aws._common import error_code
from ..backends.aws.dynamodb import DynamoStore
from ..backends.aws.sns import SnsNotifier
from ..backends.aws.sqs import SqsQueue
from ..backends.aws.tokens import DynamoTokenCache
from ..client import ThingSpaceClient
from ..clock import Clock, SystemClock
from ..config import PRODUCTION_URL, Credentials
from ..errors import ConfigurationError, RateLimitError, ThingSpaceError
from ..retry import RetryPolicy
from ..swap.callbacks import CallbackIntake
from ..swap.machine import LifecycleSettings
from ..swap.model import Priority
from ..swap.orchestrator import BatchNotFoundError, SwapOrchestrator
from ..swap.ports import ConflictError
from ..swap.reports import BatchStatus, ValidationReport
from ..swap.requests import ITEM_FIELDS, ItemError, SwapItem, SwapRequest

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_IDENTIFIER_LENGTH",
    "MAX_ITEMS",
    "MAX_NAME_LENGTH",
    "PROBLEMS_LISTED",
    "RESPONSE_BUDGET",
    "BatchFailedError",
    "Handlers",
    "LambdaConfig",
    "Runtime",
    "build_runtime",
    "callback_handler",
    "intake_handler",
    "reconciler_handler",
    "worker_handler",
]

logger = logging.getLogger("thingspace_swap.aws.lambda")

Response = dict[str, Any]
_JSON = "application/json"
_BATCH_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_ROUTES: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r"^/batches$"), "POST", "create"),
    (re.compile(r"^/batches/(?P<batch_id>[^/]+)$"), "GET", "status"),
    (re.compile(r"^/batches/(?P<batch_id>[^/]+)/retry$"), "POST", "retry"),
    (re.compile(r"^/batches/(?P<batch_id>[^/]+)/cancel$"), "POST", "cancel"),
)
_REQUEST_FIELDS = frozenset(
    {
        "account_name",
        "items",
        "target_plan",
        "priority",
        "actor",
        "dry_run",
        "require_all_valid",
        "restore_suspended",
    }
)
_PAGE = 100
_MAX_PAGE = 1000

# Limits of the intake (docs/aws.md, "Limits"): the input is bounded, and so is every answer.
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
_ENVELOPE = 1_000
#: Characters of a text field of one record in an answer (longer text is cut, and says so).
_MAX_TEXT = 1_000
_SECRET_KEYS = ("app_key", "app_secret", "username", "password")


class BatchFailedError(RuntimeError):
    """Every record of an SQS batch failed with an error: the invocation fails, so Lambda's
    error metrics see it and the event source backs off (each message was already released)."""


# Configuration -------------------------------------------------------------------------------


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


def _number(env: Mapping[str, str], name: str, default: int | None) -> int | None:
    raw = env.get(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number") from None


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


def _boto_client(service: str) -> Any:
    """A boto3 client (region and ``AWS_ENDPOINT_URL`` from the environment, as boto3 reads
    them) with standard retries."""
    config = Config(
        retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=30
    )
    return boto3.session.Session().client(service, config=config)


@attrs.frozen
class LambdaConfig:
    """Everything the handlers read from the environment (see :meth:`from_env`)."""

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
        (1000), ``CALLBACK_ALLOWED_SOURCES`` (comma-separated addresses or networks) and
        ``SWAP_<FIELD>`` for each :class:`LifecycleSettings` field (``SWAP_LEASE=120``).

        Args:
            environ: The variables (``os.environ`` by default).
            secrets: A Secrets Manager client (made with boto3 when needed and not given).

        Raises:
            ConfigurationError: Naming what is missing or malformed, never a value.
        """
        env = os.environ if environ is None else environ
        missing = [n for n in ("SWAP_QUEUE_URL", "SWAP_DLQ_URL", "SWAP_TABLE") if not env.get(n)]
        if missing:
            raise ConfigurationError(f"missing environment variable(s): {', '.join(missing)}")
        secret: dict[str, str] = {}
        arn = env.get("THINGSPACE_SECRET_ARN")
        if arn:
            secret = _read_secret(secrets or _boto_client("secretsmanager"), arn)
            absent = [key for key in _SECRET_KEYS if not secret.get(key)]
            if absent:
                raise ConfigurationError(f"the secret {arn} lacks {', '.join(absent)}")
            credentials = Credentials(*(secret[key] for key in _SECRET_KEYS))
        else:
            credentials = Credentials.from_env(env)
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
            settings=_settings_from_env(env),
        )


@attrs.frozen
class Runtime:
    """What the handlers work with: the orchestrator on SQS, DynamoDB and SNS, the queue (to
    turn SQS records into messages), the callback intake (None without callback credentials:
    the callback handler then answers 500) and the ThingSpace client."""

    orchestrator: SwapOrchestrator
    queue: SqsQueue
    client: ThingSpaceClient
    callbacks: CallbackIntake | None = None
    account_name: str | None = None
    max_items: int = 1000

    def close(self) -> None:
        """Close the ThingSpace client's connections (Lambda never needs to: the process
        ends with them)."""
        self.client.close()


def build_runtime(
    config: LambdaConfig,
    *,
    sqs: Any = None,
    dynamodb: Any = None,
    sns: Any = None,
    transport: Any = None,
    clock: Clock | None = None,
    retry: RetryPolicy | None = None,
    worker_id: str | None = None,
) -> Runtime:
    """Wire the runtime for ``config``: boto3 clients are made when not given; ``transport``,
    ``clock`` and ``retry`` go to the ThingSpace client (tests pass the simulator's)."""
    clock = clock or SystemClock()
    queue = SqsQueue(
        sqs if sqs is not None else _boto_client("sqs"),
        config.queue_url,
        dead_letter_url=config.dead_letter_url,
        high_priority_url=config.high_queue_url,
        max_receives=config.max_receives,
        clock=clock,
    )
    dynamodb = dynamodb if dynamodb is not None else _boto_client("dynamodb")
    store = DynamoStore(dynamodb, config.table_name, clock=clock)
    # Tokens and the login guard in the table every function and container shares: one
    # login for all, and none at all after a refused one until an operator clears the block.
    token_cache = DynamoTokenCache(dynamodb, config.table_name, clock=clock)
    notifier = None
    if config.topic_arn:
        notifier = SnsNotifier(sns if sns is not None else _boto_client("sns"), config.topic_arn)
    client = ThingSpaceClient(
        config.credentials,
        account_name=config.account_name,
        base_url=config.base_url,
        transport=transport,
        clock=clock,
        retry=retry,
        token_cache=token_cache,
    )
    orchestrator = SwapOrchestrator(
        client,
        queue=queue,
        store=store,
        notifier=notifier,
        settings=config.settings,
        clock=clock,
        worker_id=worker_id,
    )
    callbacks = None
    if config.callback_username and config.callback_password:
        callbacks = CallbackIntake(
            orchestrator.accept_callback,
            username=config.callback_username,
            password=config.callback_password,
            allowed_sources=config.callback_sources,
            metrics=orchestrator.metrics,
        )
    return Runtime(orchestrator, queue, client, callbacks, config.account_name, config.max_items)


# API Gateway events ----------------------------------------------------------------------------


class _HttpError(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.payload: dict[str, Any] = {"error": message, **extra}
        self.headers: dict[str, str] = {}


@attrs.frozen
class _Request:
    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes
    source_ip: str | None
    caller: str | None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _request(event: object) -> _Request:
    """The HTTP request in an API Gateway proxy event: REST (v1) or HTTP API (v2)."""
    if not isinstance(event, Mapping):
        raise _HttpError(400, "not an API Gateway event")
    context = _mapping(event.get("requestContext"))
    if event.get("version") == "2.0":
        http = _mapping(context.get("http"))
        method, path = _text(http.get("method")), _text(event.get("rawPath"))
        stage = _text(context.get("stage"))
        if path and stage and stage != "$default" and path.startswith(f"/{stage}/"):
            path = path[len(stage) + 1 :]
        source_ip = _text(http.get("sourceIp"))
        caller = _text(_mapping(_mapping(context.get("authorizer")).get("iam")).get("userArn"))
    else:
        method, path = _text(event.get("httpMethod")), _text(event.get("path"))
        identity = _mapping(context.get("identity"))
        source_ip, caller = _text(identity.get("sourceIp")), _text(identity.get("userArn"))
    if method is None or path is None:
        raise _HttpError(400, "not an API Gateway event")
    raw_headers = event.get("headers")
    headers = (
        {str(k).lower(): str(v) for k, v in raw_headers.items()}
        if isinstance(raw_headers, Mapping)
        else {}
    )
    raw_query = event.get("queryStringParameters")
    query = {str(k): str(v) for k, v in raw_query.items()} if isinstance(raw_query, Mapping) else {}
    body = event.get("body")
    text = body if isinstance(body, str) else ""
    if event.get("isBase64Encoded"):
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise _HttpError(400, "body is not valid base64") from None
    else:
        data = text.encode("utf-8", "surrogatepass")
    return _Request(
        method.upper(), path.rstrip("/") or "/", query, headers, data, source_ip, caller
    )


def _response(status: int, payload: object, headers: Mapping[str, str] | None = None) -> Response:
    """An API Gateway proxy answer (the same shape serves REST and HTTP APIs). Answers are
    built to fit ``RESPONSE_BUDGET``; one that would not is a 500 saying so, never an answer
    Lambda refuses."""
    body = _dumps(payload)
    if _wire_size(body) > RESPONSE_BUDGET - _ENVELOPE:
        logger.error("an answer of %d bytes exceeds the budget", _wire_size(body))
        status, headers = 500, None
        body = _dumps({"error": "internal error: the answer would be too large"})
    return {
        "statusCode": status,
        "headers": {"content-type": _JSON, **(headers or {})},
        "body": body,
        "isBase64Encoded": False,
    }


def _json_object(request: _Request, *, required: bool) -> dict[str, Any]:
    if len(request.body) > MAX_BODY_BYTES:
        raise _HttpError(
            413,
            f"the body has {len(request.body)} bytes: at most {MAX_BODY_BYTES} "
            f"({MAX_ITEMS} items of up to 300 bytes); split the request",
        )
    if not request.body.strip():
        if required:
            raise _HttpError(400, "the body must be a JSON object")
        return {}
    try:
        body = json.loads(request.body)
    except (ValueError, RecursionError):
        raise _HttpError(400, "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise _HttpError(400, "the body must be a JSON object")
    return body


def _optional(body: Mapping[str, Any], name: str, kind: type, where: str = "") -> Any:
    value = body.get(name)
    if value is not None and not isinstance(value, kind):
        noun = {str: "a string", bool: "true or false", list: "a list"}[kind]
        raise _HttpError(400, f"{where}{name} must be {noun}")
    return value


def _bounded(value: str | None, name: str, limit: int, why: str = "") -> str | None:
    """``value``, refused with a 400 that says what to change when it is longer than ``limit``
    characters (surrounding whitespace aside)."""
    if value is not None and len(value.strip()) > limit:
        raise _HttpError(
            400, f"{name} has {len(value.strip())} characters: {why or f'at most {limit}'}"
        )
    return value


def _identifier(raw: Mapping[str, Any], name: str, where: str) -> str | None:
    value = _optional(raw, name, str, where)
    why = (
        f"an identifier has at most {MAX_IDENTIFIER_LENGTH} "
        f"(an EID, the longest, has {MAX_IDENTIFIER_LENGTH} digits)"
    )
    return _bounded(value, f"{where}{name}", MAX_IDENTIFIER_LENGTH, why)


def _actor(named: str | None, caller: str | None) -> str:
    """Who asks, for the audit trail: the name given and the IAM caller API Gateway saw."""
    parts = [p[:200] for p in (named, caller) if p]
    return " via ".join(parts) or "api"


def _item(index: int, raw: object) -> SwapItem:
    where = f"items[{index}]."
    if not isinstance(raw, dict):
        raise _HttpError(400, f"items[{index}] must be an object")
    unknown = sorted(set(raw) - set(ITEM_FIELDS))
    if unknown:
        raise _HttpError(400, f"{where}{unknown[0][:50]} is not a field of an item")

    def text(name: str, limit: int) -> str | None:
        return _bounded(_optional(raw, name, str, where), f"{where}{name}", limit)

    fields = {  # checked in this order
        "device": _identifier(raw, "device", where),
        "device_kind": text("device_kind", MAX_KIND_LENGTH),
        "new_iccid": _identifier(raw, "new_iccid", where),
        "new_imei": _identifier(raw, "new_imei", where),
        "plan": text("plan", MAX_NAME_LENGTH),
    }
    try:
        return SwapItem.from_fields(fields, source=f"item {index}")
    except ItemError as error:
        raise _HttpError(400, f"{where}{error}") from None


def _problems(problems: Any) -> list[dict[str, str]]:
    return [{"code": p.code, "message": p.message} for p in problems]


def _dumps(payload: object) -> str:
    """``payload`` as the body of an answer (compact, ASCII-only JSON)."""
    return json.dumps(payload, separators=(",", ":"), allow_nan=False)


def _wire_size(text: str) -> int:
    """Bytes ASCII JSON ``text`` takes once Lambda's runtime has put it in its answer as a JSON
    string (each quote and backslash escaped once more)."""
    return len(text) + text.count('"') + text.count("\\")


def _clip(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with text longer than ``_MAX_TEXT`` characters cut (saying so)."""
    return {
        key: (
            f"{value[:_MAX_TEXT]}... ({len(value)} characters in all)"
            if isinstance(value, str) and len(value) > _MAX_TEXT
            else value
        )
        for key, value in record.items()
    }


def _fit(
    payload: Mapping[str, Any],
    records: list[dict[str, Any]],
    first: Callable[[dict[str, Any]], bool] | None = None,
) -> list[dict[str, Any]]:
    """The records that fit beside ``payload`` in an answer of at most ``RESPONSE_BUDGET``
    bytes, in their order. Records for which ``first`` is true are kept first; otherwise the
    kept records are the first ones (so a page ends where the next one starts)."""
    records = [_clip(record) for record in records]
    room = RESPONSE_BUDGET - _ENVELOPE - _wire_size(_dumps(payload))
    sizes = [_wire_size(_dumps(record)) + 1 for record in records]
    if sum(sizes) <= room:
        return records
    order = sorted(range(len(records)), key=lambda i: not first(records[i])) if first else None
    kept: list[int] = []
    for index in order if order is not None else range(len(records)):
        if sizes[index] > room:
            break
        room -= sizes[index]
        kept.append(index)
    return [records[i] for i in sorted(kept)]


def _with_report(
    status: int,
    head: Mapping[str, Any],
    report: ValidationReport,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """An answer carrying the per-device report (``ValidationReport.to_records``, problems as
    code and message). The first ``PROBLEMS_LISTED`` problems of devices have their message,
    later ones their code only; ``problem_summary`` counts them all by code. When the report
    would not fit the budget, invalid devices are kept first and ``report_omitted`` says how
    many devices were left out (the batch's status pages have them all)."""
    listed = 0
    by_code: Counter[str] = Counter()
    records: list[dict[str, Any]] = []
    for check, record in zip(report.checks, report.to_records(), strict=True):
        problems: list[dict[str, str]] = []
        for problem in check.problems:
            by_code[problem.code] += 1
            if listed < PROBLEMS_LISTED:
                problems.append({"code": problem.code, "message": problem.message})
                listed += 1
            else:
                problems.append({"code": problem.code})
        records.append({**record, "problems": problems})
    payload: dict[str, Any] = {
        **head,
        "valid": len(report.valid),
        "invalid": len(report.invalid),
        "problems": _problems(report.problems),
        "problem_summary": {
            "total": sum(by_code.values()),
            "listed": listed,
            "by_code": dict(sorted(by_code.items())),
        },
    }
    kept = _fit({**payload, "report": [], "report_omitted": len(records)}, records, _invalid)
    payload["report"] = kept
    if len(kept) < len(records):
        payload["report_omitted"] = len(records) - len(kept)
    return _response(status, payload, headers)


def _invalid(record: Mapping[str, Any]) -> bool:
    return not record.get("ok")


def _status_payload(status: BatchStatus, offset: int = 0, limit: int = _PAGE) -> dict[str, Any]:
    """A page of the batch's changes. A page that would not fit the answer's budget holds fewer
    changes (``limit`` then says how many); ``next_offset`` is always where the next one
    starts."""
    batch = status.batch
    records = status.to_records()
    payload: dict[str, Any] = {
        "batch_id": batch.batch_id,
        "account_name": batch.account_name,
        "state": batch.state.value,
        "size": batch.size,
        "priority": batch.priority.name.lower(),
        "target_plan": batch.target_plan,
        "actor": batch.actor,
        "created_at": batch.created_at,
        "completed_at": batch.completed_at,
        "rollback_of": batch.rollback_of,
        "summary": batch.summary,
        "counts": status.counts,
        "progress": status.progress,
        "done": status.done,
        "total": len(records),
        "offset": offset,
        "limit": limit,
        "next_offset": None,
        "changes": [],
    }
    page = records[offset : offset + limit]
    changes = _fit({**payload, "next_offset": len(records)}, page)
    if page and not changes:  # one change cannot be larger than the budget: never stall
        changes = [_clip(page[0])]
    if len(changes) < len(page):
        payload["limit"] = len(changes)
    end = offset + len(changes)
    payload["next_offset"] = end if end < len(records) else None
    payload["changes"] = changes
    return payload


def _page(query: Mapping[str, str]) -> tuple[int, int]:
    def number(name: str, default: int, low: int, high: int) -> int:
        raw = query.get(name, "")
        if not raw:
            return default
        if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
            raise _HttpError(400, f"{name} must be a whole number from {low} to {high}")
        return int(raw)

    return number("offset", 0, 0, 10**9), number("limit", _PAGE, 1, _MAX_PAGE)


def _upstream(error: ThingSpaceError) -> _HttpError:
    """A ThingSpace failure as the answer to our caller (the code, never a body or secret)."""
    if isinstance(error, RateLimitError):
        wait = max(1, math.ceil(error.retry_after or 5))
        refused = _HttpError(503, "ThingSpace is throttling requests; try again later")
        refused.headers["retry-after"] = str(wait)
        return refused
    if isinstance(error, ConfigurationError):
        return _HttpError(500, "the service is misconfigured")
    return _HttpError(502, "ThingSpace failed", code=error.code, upstream_status=error.status_code)


# The handlers ------------------------------------------------------------------------------


_Outcome = Literal["done", "dead_lettered", "busy", "not_due", "errors"]


class Handlers:
    """The four entry points over one :class:`Runtime` (each method takes the event and the
    Lambda context, which may be None)."""

    def __init__(self, runtime: Runtime, *, time_margin: float = 10.0) -> None:
        """Create the handlers.

        Args:
            runtime: The orchestrator and its backends.
            time_margin: Seconds of the invocation's remaining time below which the worker
                stops taking records (the rest are put back unprocessed and reported).
        """
        self.runtime = runtime
        self.orchestrator = runtime.orchestrator
        self.time_margin = time_margin

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Handlers:
        """Handlers configured by :meth:`LambdaConfig.from_env` (``LOG_LEVEL`` sets the
        package's log level, INFO by default)."""
        env = os.environ if environ is None else environ
        level = env.get("LOG_LEVEL", "INFO").upper()
        if not isinstance(logging.getLevelName(level), int):
            raise ConfigurationError("LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR")
        logging.getLogger("thingspace_swap").setLevel(level)
        return cls(build_runtime(LambdaConfig.from_env(env)))

    # Intake --------------------------------------------------------------------------------

    def intake(self, event: Mapping[str, Any], context: Any = None) -> Response:
        """Create a batch, read its status, retry its failed devices or cancel it."""
        try:
            request = _request(event)
            route, batch_id = self._route(request)
            return route(request, batch_id)
        except _HttpError as refused:
            return _response(refused.status, refused.payload, refused.headers)
        except Exception:
            logger.exception("the intake failed (request %s)", _request_id(context))
            return _response(500, {"error": "internal error", "request_id": _request_id(context)})

    def _route(self, request: _Request) -> tuple[Callable[[_Request, str], Response], str]:
        allowed: list[str] = []
        for pattern, method, name in _ROUTES:
            found = pattern.match(request.path)
            if found is None:
                continue
            if request.method != method:
                allowed.append(method)
                continue
            batch_id = found.groupdict().get("batch_id") or ""
            if batch_id and not _BATCH_ID.match(batch_id):
                raise _HttpError(404, "no such batch")
            handler: Callable[[_Request, str], Response] = getattr(self, f"_{name}")
            return handler, batch_id
        if allowed:
            refused = _HttpError(405, f"{request.method} is not allowed here")
            refused.headers["allow"] = ", ".join(allowed)
            raise refused
        raise _HttpError(404, "no such route")

    def _create(self, request: _Request, _: str) -> Response:
        body = _json_object(request, required=True)
        unknown = sorted(set(body) - _REQUEST_FIELDS)
        if unknown:
            raise _HttpError(400, f"{unknown[0][:50]} is not a field of a batch request")
        named = _optional(body, "account_name", str)
        account = _bounded(named, "account_name", MAX_NAME_LENGTH) or self.runtime.account_name
        if not account:
            raise _HttpError(400, "account_name is required (no default account is configured)")
        items = _optional(body, "items", list)
        if not items:
            raise _HttpError(400, "items must be a non-empty list")
        most = min(self.runtime.max_items, MAX_ITEMS)
        if len(items) > most:
            raise _HttpError(413, f"at most {most} items per batch")
        priority = _optional(body, "priority", str) or "normal"
        if priority not in ("normal", "high"):
            raise _HttpError(400, "priority must be 'normal' or 'high'")
        swap = SwapRequest(
            account,
            tuple(_item(index, raw) for index, raw in enumerate(items)),
            target_plan=_bounded(
                _optional(body, "target_plan", str), "target_plan", MAX_NAME_LENGTH
            )
            or None,
            priority=Priority.HIGH if priority == "high" else Priority.NORMAL,
            actor=_actor(_optional(body, "actor", str), request.caller),
            require_all_valid=bool(_optional(body, "require_all_valid", bool)),
            restore_suspended=bool(_optional(body, "restore_suspended", bool)),
        )
        try:
            if _optional(body, "dry_run", bool):
                report = self.orchestrator.validate(swap)
                return _with_report(200, {"dry_run": True, "ok": report.ok}, report)
            submission = self.orchestrator.submit(swap)
        except ThingSpaceError as error:
            raise _upstream(error) from None
        except ConflictError as error:
            raise _HttpError(409, f"a line was taken meanwhile: {str(error)[:_MAX_TEXT]}") from None
        report = submission.report
        if submission.batch is None:
            if report.problems:
                why = "the request cannot run: " + "; ".join(p.message for p in report.problems)
            elif not report.valid:
                why = "no device is valid"
            else:
                why = f"require_all_valid is set and {len(report.invalid)} device(s) are invalid"
            return _with_report(422, {"error": why}, report)
        batch = submission.batch
        return _with_report(
            201,
            {"batch_id": batch.batch_id, "state": batch.state.value},
            report,
            {"location": f"/batches/{batch.batch_id}"},
        )

    def _status(self, request: _Request, batch_id: str) -> Response:
        offset, limit = _page(request.query)
        try:
            status = self.orchestrator.status(batch_id)
        except BatchNotFoundError:
            raise _HttpError(404, "no such batch") from None
        return _response(200, _status_payload(status, offset, limit))

    def _retry(self, request: _Request, batch_id: str) -> Response:
        body = _json_object(request, required=False)
        try:
            self.orchestrator.batch(batch_id)
        except BatchNotFoundError:
            raise _HttpError(404, "no such batch") from None
        actor = _actor(_optional(body, "actor", str), request.caller)
        force = _optional(body, "force", bool) or False
        report = self.orchestrator.retry_failed(batch_id, actor=actor, force=force)
        return _response(
            202 if report.retried else 200,
            {
                "batch_id": batch_id,
                "retried": list(report.retried),
                "refused": [{"change_id": c, "reason": r} for c, r in report.refused],
            },
        )

    def _cancel(self, request: _Request, batch_id: str) -> Response:
        body = _json_object(request, required=False)
        actor = _actor(_optional(body, "actor", str), request.caller)
        try:
            status = self.orchestrator.cancel(batch_id, actor=actor)
        except BatchNotFoundError:
            raise _HttpError(404, "no such batch") from None
        return _response(200, _status_payload(status))

    # Worker --------------------------------------------------------------------------------

    def worker(self, event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
        """Process an SQS event; answer the records to keep (see the module notes)."""
        records = event.get("Records") if isinstance(event, Mapping) else None
        if not isinstance(records, list):
            raise ValueError("not an SQS event: no Records")
        failures: list[str] = []
        errors = 0
        stopped: dict[str, bool] = {}  # FIFO group -> stopped by an error (else deferred)
        for record in records:
            message_id = str(record.get("messageId", ""))
            attributes = record.get("attributes") or {}
            group = attributes.get("MessageGroupId")
            if group is not None and group in stopped:
                self._put_back(record)
                failures.append(message_id)
                errors += stopped[group]
                continue
            if _remaining(context) < self.time_margin:
                self._put_back(record)
                failures.append(message_id)
                continue
            outcome = self._process(record)
            if outcome in ("done", "dead_lettered"):
                continue
            failures.append(message_id)
            errors += outcome == "errors"
            if group is not None:
                stopped[group] = outcome == "errors"
        if records and errors == len(records):
            raise BatchFailedError(f"all {len(records)} record(s) failed")
        return {"batchItemFailures": [{"itemIdentifier": m} for m in failures]}

    def _process(self, record: Mapping[str, Any]) -> _Outcome:
        try:
            message = self.runtime.queue.from_lambda_record(record)
        except Exception:
            logger.exception("cannot read SQS record %s", record.get("messageId"))
            return "errors"
        if message is None:
            return "not_due"
        try:
            return self.orchestrator.process(message)
        except Exception:
            logger.exception("processing message %s failed", message.message_id)
            try:
                self.runtime.queue.release(message, self.orchestrator.settings.retry_initial)
            except Exception:
                logger.exception("releasing message %s failed", message.message_id)
            return "errors"

    def _put_back(self, record: Mapping[str, Any]) -> None:
        """Make an unprocessed record visible again now (best effort: otherwise it comes back
        when its visibility timeout ends). On FIFO queues SQS still holds it behind its
        group's earlier message while that one is in flight."""
        try:
            message = self.runtime.queue.from_lambda_record(record)
            if message is not None:
                self.runtime.queue.release(message, 0.0)
        except Exception:
            logger.exception("putting back message %s failed", record.get("messageId"))

    # Callbacks and the reconciler ----------------------------------------------------------

    def callback(self, event: Mapping[str, Any], context: Any = None) -> Response:
        """A CarrierService callback through :class:`CallbackIntake` (200 once kept)."""
        try:
            request = _request(event)
        except _HttpError as refused:
            return _response(refused.status, refused.payload)
        if request.method != "POST":
            return _response(405, {"error": "method not allowed"}, {"allow": "POST"})
        intake = self.runtime.callbacks
        if intake is None:
            logger.error("callback refused: no callback credentials are configured")
            return _response(500, {"error": "callbacks are not configured"})
        answer = intake.handle(request.body, request.headers, request.source_ip)
        return {
            "statusCode": answer.status,
            "headers": {"content-type": answer.content_type},
            "body": answer.body.decode("utf-8"),
            "isBase64Encoded": False,
        }

    def reconciler(self, event: Mapping[str, Any], context: Any = None) -> dict[str, int]:
        """Advance changes whose deadline passed and complete finished batches."""
        advanced = self.orchestrator.sweep()
        logger.info("reconciler advanced %d change(s)", advanced)
        return {"advanced": advanced}


def _remaining(context: Any) -> float:
    """Seconds left in the invocation (infinite without a Lambda context)."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return remaining() / 1000.0 if callable(remaining) else math.inf


def _request_id(context: Any) -> str | None:
    value = getattr(context, "aws_request_id", None)
    return value if isinstance(value, str) else None


# Entry points --------------------------------------------------------------------------------


@functools.cache
def _handlers() -> Handlers:
    """This process's handlers: built on the first invocation, then reused while the execution
    environment lives (clients, connections and ThingSpace tokens with it). A failed build is
    not cached: the next invocation tries again."""
    return Handlers.from_env()


def intake_handler(event: Mapping[str, Any], context: Any) -> Response:
    """Lambda entry point of the intake API."""
    return _handlers().intake(event, context)


def worker_handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point of the SQS worker."""
    return _handlers().worker(event, context)


def callback_handler(event: Mapping[str, Any], context: Any) -> Response:
    """Lambda entry point of the callback receiver."""
    return _handlers().callback(event, context)


def reconciler_handler(event: Mapping[str, Any], context: Any) -> dict[str, int]:
    """Lambda entry point of the scheduled reconciler."""
    return _handlers().reconciler(event, context)
