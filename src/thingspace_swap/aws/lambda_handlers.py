"""AWS Lambda entry points: plain functions over the event, configured from the environment.

* ``intake_handler`` (API Gateway, REST v1 or HTTP API v2 events): ``POST /batches``,
  ``GET /batches/{id}``, ``POST /batches/{id}/retry``, ``POST /batches/{id}/cancel``.
* ``worker_handler`` (SQS events, with ``ReportBatchItemFailures``): ``orchestrator.process``
  for each record.
* ``callback_handler`` (API Gateway): ThingSpace's CarrierService callbacks, through
  [CallbackIntake][thingspace_swap.swap.CallbackIntake].
* ``reconciler_handler`` (EventBridge schedule): ``orchestrator.sweep()``.

Each module-level handler delegates to ``Handlers``, built once per process by ``Handlers.from_env``
and kept for the life of the execution environment (a ``functools.cache``: the accepted Lambda
pattern, and the one deliberate module-level cache of this package), so boto3 clients, the
ThingSpace client and its tokens are reused across warm invocations. Tests build
``Handlers(runtime)`` with a runtime of their own (``build_runtime``).

The pieces: ``config`` (``LambdaConfig``, the environment), ``runtime`` (``LambdaRuntime``,
``build_runtime``), ``apigateway`` (events and answers), ``routes`` and ``answers`` (the intake API)
and ``limits``.

The worker answers ``{"batchItemFailures": [...]}`` (as AWS Lambda Powertools' batch processor
does): a record is a failure when its change was busy, it was not due yet or processing it
failed; every such message was already made visible again when it should be retried
(``release``), so Lambda's own handling of failures only keeps it in the queue. On a FIFO
queue the first failure of a message group stops that group: its later records of the batch are
put back unprocessed and reported too. A poison record is dead-lettered with its reason by
``process`` and counts as a success, so it never blocks its batch. The invocation raises
``BatchFailedError`` only when every record failed with an *error*; records that were
merely deferred (busy or not due) are normal flow control, and failing the invocation for them
would raise Lambda's error metrics and make the event source back off for nothing.

Answers are JSON; errors are ``{"error": ...}`` with 400 (bad JSON or shape, a field over its
limit), 404, 405, 409 (a line was taken meanwhile), 413 (too many items, too large a body), 422
(nothing valid, with the report), 502 (ThingSpace failed), 503 with ``Retry-After`` (ThingSpace
throttled) or 500, never with a traceback or a secret. The intake's input is bounded and every
answer is built to fit ``RESPONSE_BUDGET``, well below Lambda's 6 MB (``MAX_ITEMS`` and the
other limits in ``limits``; docs/aws.md, "Limits").
Events are never logged: a callback's body carries its password.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from .apigateway import HttpError, Response, parse_request, response
from .config import LambdaConfig, configure_logging, logger
from .limits import (
    MAX_BODY_BYTES,
    MAX_IDENTIFIER_LENGTH,
    MAX_ITEMS,
    MAX_KIND_LENGTH,
    MAX_NAME_LENGTH,
    PROBLEMS_LISTED,
    RESPONSE_BUDGET,
)
from .routes import Intake
from .runtime import LambdaRuntime, build_runtime

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_IDENTIFIER_LENGTH",
    "MAX_ITEMS",
    "MAX_KIND_LENGTH",
    "MAX_NAME_LENGTH",
    "PROBLEMS_LISTED",
    "RESPONSE_BUDGET",
    "BatchFailedError",
    "Handlers",
    "LambdaConfig",
    "LambdaRuntime",
    "build_runtime",
    "callback_handler",
    "intake_handler",
    "reconciler_handler",
    "worker_handler",
]

Runtime = LambdaRuntime
"""The former name of ``LambdaRuntime`` (the CLI has a ``Runtime`` of its own)."""


class BatchFailedError(RuntimeError):
    """Every record of an SQS batch failed with an error: the invocation fails, so Lambda's
    error metrics see it and the event source backs off (each message was already released)."""


_Outcome = Literal["done", "dead_lettered", "busy", "not_due", "errors"]


class Handlers:
    """The four entry points over one ``LambdaRuntime`` (each method takes the event and
    the Lambda context, which may be None)."""

    def __init__(
        self, runtime: LambdaRuntime, *, time_margin: float = 10.0, concurrency: int = 1
    ) -> None:
        """Create the handlers.

        Args:
            runtime: The orchestrator and its backends.
            time_margin: Seconds of the invocation's remaining time below which the worker
                stops taking records (the rest are put back unprocessed and reported).
            concurrency: Message groups the worker processes at once (threads); a group's
                records are always processed in their order. The reconciler advances as many
                due changes at once.
        """
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        self.runtime = runtime
        self.orchestrator = runtime.orchestrator
        self.time_margin = time_margin
        self.concurrency = concurrency
        self._intake = Intake(runtime)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Handlers:
        """Handlers configured by ``LambdaConfig.from_env`` (``LOG_LEVEL`` sets the
        package's log level, INFO by default)."""
        env = os.environ if environ is None else environ
        configure_logging(env)
        config = LambdaConfig.from_env(env)
        return cls(build_runtime(config), concurrency=config.worker_concurrency)

    def intake(self, event: Mapping[str, Any], context: Any = None) -> Response:
        """Create a batch, read its status, retry its failed devices or cancel it."""
        try:
            return self._intake.handle(parse_request(event))
        except HttpError as refused:
            return response(refused.status, refused.payload, refused.headers)
        except Exception:
            logger.exception("the intake failed (request %s)", _request_id(context))
            return response(500, {"error": "internal error", "request_id": _request_id(context)})

    # Worker --------------------------------------------------------------------------------

    def worker(self, event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
        """Process an SQS event; answer the records to keep (see the module notes)."""
        records = event.get("Records") if isinstance(event, Mapping) else None
        if not isinstance(records, list):
            raise ValueError("not an SQS event: no Records")
        groups: dict[str, list[tuple[int, Mapping[str, Any]]]] = {}
        for index, record in enumerate(records):
            group = (record.get("attributes") or {}).get("MessageGroupId")
            groups.setdefault(f"group:{group}" if group is not None else f"#{index}", []).append(
                (index, record)
            )
        if self.concurrency == 1 or len(groups) == 1:
            results = [self._group(g, context) for g in groups.values()]
        else:
            with ThreadPoolExecutor(min(self.concurrency, len(groups))) as pool:
                results = list(pool.map(lambda g: self._group(g, context), groups.values()))
        failures = sorted(f for failed, _ in results for f in failed)
        errors = sum(count for _, count in results)
        if records and errors == len(records):
            raise BatchFailedError(f"all {len(records)} record(s) failed")
        return {"batchItemFailures": [{"itemIdentifier": m} for _, m in failures]}

    def _group(
        self, records: list[tuple[int, Mapping[str, Any]]], context: Any
    ) -> tuple[list[tuple[int, str]], int]:
        """One message group's records, in order: the (index, id) of those to keep, and how
        many of them failed with an error. The group's first failure stops it: its later
        records are put back unprocessed."""
        failures: list[tuple[int, str]] = []
        errors = 0
        stopped: bool | None = None  # stopped by an error (True) or a deferral (False)
        for index, record in records:
            message_id = str(record.get("messageId", ""))
            if stopped is not None or _remaining(context) < self.time_margin:
                self._put_back(record)
                failures.append((index, message_id))
                errors += bool(stopped)
                continue
            outcome = self._process(record)
            if outcome in ("done", "dead_lettered"):
                continue
            failures.append((index, message_id))
            errors += outcome == "errors"
            if (record.get("attributes") or {}).get("MessageGroupId") is not None:
                stopped = outcome == "errors"
        return failures, errors

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
        """A CarrierService callback through
        [CallbackIntake][thingspace_swap.swap.CallbackIntake] (200 once kept)."""
        try:
            request = parse_request(event)
        except HttpError as refused:
            return response(refused.status, refused.payload)
        if request.method != "POST":
            return response(405, {"error": "method not allowed"}, {"allow": "POST"})
        intake = self.runtime.callbacks
        if intake is None:
            logger.error("callback refused: no callback credentials are configured")
            return response(500, {"error": "callbacks are not configured"})
        answer = intake.handle(request.body, request.headers, request.source_ip)
        return {
            "statusCode": answer.status,
            "headers": {"content-type": answer.content_type},
            "body": answer.body.decode("utf-8"),
            "isBase64Encoded": False,
        }

    def reconciler(self, event: Mapping[str, Any], context: Any = None) -> dict[str, int]:
        """Advance changes whose deadline passed (``concurrency`` at once) and complete
        finished batches."""
        advanced = self.orchestrator.sweep(concurrency=self.concurrency)
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
